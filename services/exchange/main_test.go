package exchange_test

import (
	"flag"
	"os"
	"testing"

	"github.com/signupsync/signupsync/internal/testenv"
)

// TestMain starts the Firebase Auth emulator for the package, except in the
// worker processes of `go test -fuzz`: they run FuzzVerify only, which needs
// none, and each would otherwise start an emulator of its own.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	os.Exit(testenv.RunWithEmulator(m))
}
