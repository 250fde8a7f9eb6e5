package events_test

import (
	"encoding/json"
	"fmt"

	"github.com/signupsync/signupsync/events"
)

// A SAML connection passes email_verified on as the attribute string it
// received; the one decoder reads it as the boolean it means, and a value
// Auth0 never writes is an error naming the field.
func ExampleAuth0Bool() {
	var u events.Auth0User
	err := json.Unmarshal([]byte(`{"user_id":"samlp|corp|1","email_verified":"TRUE"}`), &u)
	fmt.Println(bool(u.EmailVerified), err)

	err = json.Unmarshal([]byte(`{"user_id":"samlp|corp|1","email_verified":"yes"}`), &u)
	fmt.Println(err)
	// Output:
	// true <nil>
	// json: cannot unmarshal string into Go struct field Auth0User.email_verified of type bool
}

// A user of a "custom" identity provider holds a password in Auth0, so it is
// a database user: skipped, and listed for the password export.
func ExampleClassify_database() {
	d := events.SignupData{
		UserID:     "custom|42",
		Identities: []events.Identity{{Provider: "custom", Connection: "Username-Password-Authentication", UserID: "42"}},
	}
	fmt.Println(events.Classify(d, nil).Reason)
	// Output: database_connection
}
