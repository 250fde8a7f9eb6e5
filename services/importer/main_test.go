package importer

import (
	"os"
	"testing"

	"github.com/signupsync/signupsync/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunWithEmulator(m)) }
