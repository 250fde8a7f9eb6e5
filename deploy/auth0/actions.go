// Package auth0actions gives Go code the source of the two signupsync Auth0
// Actions, post-login.js and post-user-registration.js, exactly as
// build.js generated them from signupsync-action.js, so that
// `signupsync auth0 install` deploys the code the Node tests in test/ ran.
package auth0actions

import _ "embed"

//go:embed post-login.js
var postLogin string

//go:embed post-user-registration.js
var postUserRegistration string

// PostLogin returns the source of the Action for the post-login trigger.
func PostLogin() string { return postLogin }

// PostUserRegistration returns the source of the Action for the
// post-user-registration trigger.
func PostUserRegistration() string { return postUserRegistration }
