package rolerun

import "testing"

// TestRedactURLsHidesEveryUserinfo: whatever sits between the scheme and
// the last '@' of each URL is replaced, even when the password holds a
// separator, and URLs without userinfo are kept.
func TestRedactURLsHidesEveryUserinfo(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"no userinfo", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"user and password", "nats://u:pw@h:4222", "nats://xxxxx@h:4222"},
		{"token as the user", "nats://tok@h:4222", "nats://xxxxx@h:4222"},
		{"password with @ and /", "nats://u:p@s/s?w@h:4222", "nats://xxxxx@h:4222"},
		{"no scheme", "u:pw@h:4222", "xxxxx@h:4222"},
		{"list, one with userinfo", "nats://a:4222, nats://u:pw@b:4222", "nats://a:4222, nats://xxxxx@b:4222"},
		{"comma in the password", "nats://u:p,w@a:4222,nats://b:4222", "nats://xxxxx@a:4222,nats://b:4222"},
		{"list without schemes", "u:p@a:4222,v:q@b:4222", "xxxxx@b:4222"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURLs(tt.in); got != tt.want {
				t.Fatalf("RedactURLs(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
