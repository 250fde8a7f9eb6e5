package schemas_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/signupsync/signupsync/schemas"
)

func TestSchemas(t *testing.T) {
	set, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{schemas.Auth0Action, schemas.Auth0EventStream, schemas.Auth0LogEvent, schemas.Auth0User, schemas.SignupEventV1, schemas.LifecycleEventV1, schemas.AccountMergeV1} {
		if !slices.Contains(set.Names(), name) {
			t.Fatalf("schema %s not compiled: %v", name, set.Names())
		}
	}
	tests := []struct {
		name, schema, doc, field string
	}{
		{"action ok", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1"}}`, ""},
		{"action unknown trigger", schemas.Auth0Action, `{"trigger":"pre-login","user":{"user_id":"github|1"}}`, "/trigger"},
		{"action user id without provider", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"1"}}`, "/user/user_id"},
		{"action identity user id number", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1","identities":[{"provider":"github","user_id":1,"isSocial":true}]}}`, ""},
		{"action identity without provider", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1","identities":[{"user_id":"1"}]}}`, "/user/identities/0"},
		{"action logins count negative", schemas.Auth0Action, `{"trigger":"post-login","stats":{"logins_count":-1},"user":{"user_id":"github|1"}}`, "/stats/logins_count"},
		{"action email_verified string", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"samlp|corp|1","email_verified":"true"}}`, ""},
		{"action email_verified string any case", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"apple|1","email_verified":"False"}}`, ""},
		{"action email_verified null", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"apple|1","email_verified":null}}`, ""},
		{"action email_verified other string", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"apple|1","email_verified":"yes"}}`, "/user/email_verified"},
		{"action email_verified number", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"apple|1","email_verified":3}}`, "/user/email_verified"},
		{"action isSocial string", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1","identities":[{"provider":"github","user_id":1,"isSocial":"true"}]}}`, ""},
		{"action isSocial other string", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1","identities":[{"provider":"github","user_id":1,"isSocial":"social"}]}}`, "/user/identities/0/isSocial"},
		{"action created_at object", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1","created_at":{"$date":"2025-01-29T14:36:25.794Z"}}}`, ""},
		{"action created_at number", schemas.Auth0Action, `{"trigger":"post-login","user":{"user_id":"github|1","created_at":1738161385}}`, "/user/created_at"},
		{"event stream email_verified string", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.created","source":"s","data":{"object":{"user_id":"samlp|corp|1","email_verified":"TRUE"}}}`, ""},
		{"event stream email_verified other string", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.created","source":"s","data":{"object":{"user_id":"samlp|corp|1","email_verified":"verified"}}}`, "/data/object/email_verified"},
		{"event stream user.created ok", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.created","source":"s","data":{"object":{"user_id":"github|1"}}}`, ""},
		{"event stream other type needs no user", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"organization.created","source":"s"}`, ""},
		{"event stream user.deleted needs a user", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.deleted","source":"s","data":{}}`, "/data"},
		{"event stream user.created without object", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.created","source":"s","data":{}}`, "/data"},
		{"event stream bad specversion", schemas.Auth0EventStream, `{"specversion":"0.3","id":"e","type":"user.created","source":"s","data":{"object":{"user_id":"a|b"}}}`, "/specversion"},
		{"event stream user.deleted ok", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.deleted","source":"s","data":{"object":{"user_id":"google-oauth2|1","deleted_at":"2026-11-02T10:00:00Z"}}}`, ""},
		{"event stream user.updated without user", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.updated","source":"s","data":{"object":{"email":"x@example.com"}}}`, "/data/object"},
		{"event stream user.updated bad user id", schemas.Auth0EventStream, `{"specversion":"1.0","id":"e","type":"user.updated","source":"s","data":{"object":{"user_id":"nopipe"}}}`, "/data/object/user_id"},
		{"log sdu ok", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"sdu","user_id":"github|1","date":"2026-11-02T10:00:00Z"}}`, ""},
		{"log sdu without user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"sdu"}}`, "/data"},
		{"log du bad user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"du","user_id":"1"}}`, "/data/user_id"},
		{"lifecycle ok", schemas.LifecycleEventV1, `{"specversion":"1.0","id":"lc_00000000000000000000000000000000","source":"signupsync/event_stream","type":"dev.signupsync.user.lifecycle.v1","time":"2026-11-01T10:00:00Z","subject":"a|b","datacontenttype":"application/json","data":{"tenant":"t","kind":"deleted","user_id":"a|b","at":"2026-11-01T10:00:00Z"}}`, ""},
		{"lifecycle unknown kind", schemas.LifecycleEventV1, `{"specversion":"1.0","id":"lc_00000000000000000000000000000000","source":"signupsync/event_stream","type":"dev.signupsync.user.lifecycle.v1","time":"2026-11-01T10:00:00Z","subject":"a|b","datacontenttype":"application/json","data":{"tenant":"t","kind":"blocked","user_id":"a|b","at":"2026-11-01T10:00:00Z"}}`, "/data/kind"},
		{"lifecycle email is not carried", schemas.LifecycleEventV1, `{"specversion":"1.0","id":"lc_00000000000000000000000000000000","source":"signupsync/event_stream","type":"dev.signupsync.user.lifecycle.v1","time":"2026-11-01T10:00:00Z","subject":"a|b","datacontenttype":"application/json","data":{"tenant":"t","kind":"updated","user_id":"a|b","at":"2026-11-01T10:00:00Z","email":"x@example.com"}}`, "/data"},
		{"merge request ok", schemas.AccountMergeV1, `{"specversion":"1.0","id":"mg_00000000000000000000000000000000","source":"signupsync/exchange","type":"dev.signupsync.account.merge.v1","time":"2026-11-01T10:00:00Z","subject":"anon1","datacontenttype":"application/json","data":{"anonymous_uid":"anon1","permanent_uid":"google-oauth2|1","auth0_user_id":"google-oauth2|1","at":"2026-11-01T10:00:00Z"}}`, ""},
		{"merge request without auth0 subject", schemas.AccountMergeV1, `{"specversion":"1.0","id":"mg_00000000000000000000000000000000","source":"signupsync/exchange","type":"dev.signupsync.account.merge.v1","time":"2026-11-01T10:00:00Z","subject":"anon1","datacontenttype":"application/json","data":{"anonymous_uid":"anon1","permanent_uid":"p","at":"2026-11-01T10:00:00Z"}}`, "/data"},
		{"merge request carries no email", schemas.AccountMergeV1, `{"specversion":"1.0","id":"mg_00000000000000000000000000000000","source":"signupsync/exchange","type":"dev.signupsync.account.merge.v1","time":"2026-11-01T10:00:00Z","subject":"anon1","datacontenttype":"application/json","data":{"anonymous_uid":"anon1","permanent_uid":"p","auth0_user_id":"a|b","at":"2026-11-01T10:00:00Z","email":"x@example.com"}}`, "/data"},
		{"merged acknowledgement ok", schemas.AccountMergeV1, `{"specversion":"1.0","id":"md_00000000000000000000000000000000","source":"app/merge-worker","type":"dev.signupsync.account.merged.v1","time":"2026-11-01T10:00:00Z","subject":"anon1","datacontenttype":"application/json","data":{"anonymous_uid":"anon1","permanent_uid":"p","at":"2026-11-01T10:00:00Z"}}`, ""},
		{"merged acknowledgement with a request id", schemas.AccountMergeV1, `{"specversion":"1.0","id":"mg_00000000000000000000000000000000","source":"app/merge-worker","type":"dev.signupsync.account.merged.v1","time":"2026-11-01T10:00:00Z","subject":"anon1","datacontenttype":"application/json","data":{"anonymous_uid":"anon1","permanent_uid":"p","at":"2026-11-01T10:00:00Z"}}`, "/id"},
		{"log ss ok", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"ss","user_id":"github|1"}}`, ""},
		{"log ss without user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"ss"}}`, "/data"},
		{"log other type", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"f"}}`, ""},
		{"log type longer than 32", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"my_account_authentication_method_succeeded"}}`, ""},
		{"log type longer than 128", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"` + strings.Repeat("t", 129) + `"}}`, "/data/type"},
		{"log first login needs a user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"s","details":{"stats":{"loginsCount":1}}}}`, "/data"},
		{"log first login in a prompt needs a user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"scoa","details":{"prompts":[{"name":"login"},{"stats":{"loginsCount":1}}]}}}`, "/data"},
		{"log first login ok", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"s","user_id":"google-oauth2|1","details":{"prompts":[{"stats":{"loginsCount":1}}]}}}`, ""},
		{"log first login bad user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"s","user_id":"nopipe","details":{"stats":{"loginsCount":1}}}}`, "/data/user_id"},
		{"log returning login needs no user", schemas.Auth0LogEvent, `{"log_id":"1","data":{"type":"s","details":{"stats":{"loginsCount":5}}}}`, ""},
		{"event extra property", schemas.SignupEventV1, `{"specversion":"1.0","id":"su_00000000000000000000000000000000","source":"signupsync/action","type":"dev.signupsync.signup.v1","time":"2026-11-01T10:00:00Z","subject":"a|b","datacontenttype":"application/json","data":{"tenant":"t","partial":false,"user_id":"a|b","identities":[]},"extra":1}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc any
			if err := json.Unmarshal([]byte(tt.doc), &doc); err != nil {
				t.Fatal(err)
			}
			err := set.Validate(tt.schema, doc)
			wantOK := tt.field == "" && tt.name != "event extra property"
			if wantOK {
				if err != nil {
					t.Fatalf("valid document rejected: %v", err)
				}
				return
			}
			var fe *schemas.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a FieldError", err)
			}
			if tt.field != "" && fe.Field != tt.field {
				t.Fatalf("field %q, want %q (%v)", fe.Field, tt.field, err)
			}
		})
	}
	if err := set.Validate("nope.json", nil); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Fatalf("unknown schema: %v", err)
	}
}
