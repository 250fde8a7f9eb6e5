package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/auth"
)

// EmulatorHostEnv is the variable the Firebase Admin SDK reads.
const EmulatorHostEnv = "FIREBASE_AUTH_EMULATOR_HOST"

// Emulator is a Firebase Auth emulator process (firebase-tools) on free
// loopback ports. Its state can survive Stop/Start (export on exit, import
// on start), which outage tests use.
type Emulator struct {
	// Host is host:port of the Auth emulator, the value of
	// FIREBASE_AUTH_EMULATOR_HOST.
	Host string
	// Project is the emulator's own demo project, the only one whose
	// accounts survive Stop/Start. Each emulator gets a distinct one, since
	// firebase-tools finds a running instance (for export) by project id.
	Project string

	bin      string
	dir      string
	stateDir string
	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan error
}

// FirebaseBin finds the firebase CLI: $SIGNUPSYNC_FIREBASE_BIN, the
// project-local cache (.cache/firebase-tools, filled by `make emulator`), or
// PATH.
func FirebaseBin() (string, error) {
	if b := os.Getenv("SIGNUPSYNC_FIREBASE_BIN"); b != "" {
		return b, nil
	}
	if root, err := repoRoot(); err == nil {
		b := filepath.Join(root, ".cache", "firebase-tools", "node_modules", ".bin", "firebase")
		if _, err := os.Stat(b); err == nil {
			return b, nil
		}
	}
	if b, err := exec.LookPath("firebase"); err == nil {
		return b, nil
	}
	return "", errors.New("firebase CLI not found: run `make emulator` (installs firebase-tools into .cache/) or set SIGNUPSYNC_FIREBASE_BIN")
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// NewEmulator prepares an emulator in dir (config, state) without starting it.
func NewEmulator(dir string) (*Emulator, error) {
	bin, err := FirebaseBin()
	if err != nil {
		return nil, err
	}
	e := &Emulator{bin: bin, dir: dir, stateDir: filepath.Join(dir, "state")}
	if err := e.choosePorts(); err != nil {
		return nil, err
	}
	return e, nil
}

// choosePorts picks free loopback ports for the emulator and its hub and
// logging servers and writes the config.
func (e *Emulator) choosePorts() error {
	ports := make([]int, 3)
	for i := range ports {
		var err error
		if ports[i], err = freePort(); err != nil {
			return fmt.Errorf("free port: %w", err)
		}
	}
	cfg := fmt.Sprintf(`{"emulators":{"auth":{"host":"127.0.0.1","port":%d},"hub":{"host":"127.0.0.1","port":%d},"logging":{"host":"127.0.0.1","port":%d},"ui":{"enabled":false},"singleProjectMode":false}}`, ports[0], ports[1], ports[2])
	if err := os.WriteFile(filepath.Join(e.dir, "firebase.json"), []byte(cfg), 0o644); err != nil {
		return err
	}
	e.Host, e.Project = "127.0.0.1:"+strconv.Itoa(ports[0]), "demo-emu-"+strconv.Itoa(ports[0])
	return nil
}

// Start launches the emulator and waits until it answers. With keepState,
// accounts exported by the previous Stop are imported. A first start whose
// ports were taken meanwhile (they are picked free, then bound by another
// process) is tried again on new ports.
func (e *Emulator) Start(keepState bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		return errors.New("emulator already running")
	}
	for attempt := 1; ; attempt++ {
		err := e.startLocked(keepState)
		if err == nil || keepState || attempt == 3 || !errors.Is(err, errPortTaken) {
			return err
		}
		if err := e.choosePorts(); err != nil {
			return err
		}
	}
}

var errPortTaken = errors.New("emulator port taken")

func (e *Emulator) startLocked(keepState bool) error {
	args := []string{"emulators:start", "--only", "auth", "--project", e.Project, "--config", filepath.Join(e.dir, "firebase.json"), "--export-on-exit", e.stateDir}
	if keepState {
		if _, err := os.Stat(e.stateDir); err == nil {
			args = append(args, "--import", e.stateDir)
		}
	}
	cmd := exec.Command(e.bin, args...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), "CI=1", "FIREBASE_CLI_EXPERIMENTS=", "NO_UPDATE_NOTIFIER=1")
	logf, err := os.OpenFile(filepath.Join(e.dir, "emulator.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start firebase emulator: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); logf.Close() }()
	e.cmd, e.done = cmd, done
	deadline := time.Now().Add(3 * time.Minute)
	for {
		res, err := http.Get("http://" + e.Host + "/")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-done:
			e.cmd = nil
			log, _ := os.ReadFile(filepath.Join(e.dir, "emulator.log"))
			if bytes.Contains(log, []byte("port taken")) {
				_ = os.Truncate(filepath.Join(e.dir, "emulator.log"), 0)
				return fmt.Errorf("%w: %v\n%s", errPortTaken, err, tail(log, 3000))
			}
			return fmt.Errorf("firebase emulator exited during start: %v\n%s", err, tail(log, 3000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = e.stopLocked()
			return errors.New("firebase emulator did not answer within 3 minutes")
		}
	}
}

// Stop interrupts the emulator (it exports its state on exit) and waits.
func (e *Emulator) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stopLocked()
}

func (e *Emulator) stopLocked() error {
	if e.cmd == nil {
		return nil
	}
	pgid := e.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGINT)
	var err error
	select {
	case err = <-e.done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		err = <-e.done
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers of the group
	e.cmd = nil
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // interrupted on purpose
	}
	return err
}

// Freeze suspends the emulator process (SIGSTOP): every call hangs until
// Thaw, as with an unreachable Firebase, and no state is lost. Outage tests
// under load use it instead of Stop, because the emulator's export on exit
// can drop writes that arrive while it shuts down, which production
// Firebase never does.
func (e *Emulator) Freeze() error { return e.signalGroup(syscall.SIGSTOP) }

// Thaw resumes a frozen emulator (SIGCONT).
func (e *Emulator) Thaw() error { return e.signalGroup(syscall.SIGCONT) }

func (e *Emulator) signalGroup(sig syscall.Signal) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return errors.New("emulator not running")
	}
	return syscall.Kill(-e.cmd.Process.Pid, sig)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// RunWithEmulator is the body of a TestMain for packages that need
// Firebase: it starts one emulator for the test binary, points the Admin
// SDK at it through FIREBASE_AUTH_EMULATOR_HOST, runs the tests and stops
// it. Tests isolate themselves with ProjectID. A missing emulator fails
// the run; it never skips.
func RunWithEmulator(m *testing.M) int {
	dir, err := os.MkdirTemp("", "signupsync-emulator-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "emulator dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	emu, err := NewEmulator(dir)
	if err == nil {
		err = emu.Start(false)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the Firebase Auth emulator is required:", err)
		return 1
	}
	shared = emu
	os.Setenv(EmulatorHostEnv, emu.Host)
	code := m.Run()
	if err := emu.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop emulator:", err)
	}
	return code
}

// shared is the emulator RunWithEmulator started for this test binary.
var shared *Emulator

// SharedEmulator returns the emulator of RunWithEmulator, failing the test
// when the package has no such TestMain.
func SharedEmulator(t testing.TB) *Emulator {
	t.Helper()
	if shared == nil {
		t.Fatal("no emulator: the package's TestMain must call testenv.RunWithEmulator")
	}
	return shared
}

// ProjectID returns a demo project id unique to the test, so tests sharing
// one emulator never see each other's accounts.
func ProjectID(t testing.TB) string {
	sum := sha256.Sum256([]byte(t.Name() + strconv.FormatInt(time.Now().UnixNano(), 10)))
	return "demo-" + hex.EncodeToString(sum[:8])
}

// FirebaseAuth returns an Admin SDK Auth client for projectID on the
// emulator.
func FirebaseAuth(t testing.TB, projectID string) *auth.Client {
	t.Helper()
	SharedEmulator(t)
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: projectID})
	if err != nil {
		t.Fatalf("firebase app: %v", err)
	}
	c, err := app.Auth(ctx)
	if err != nil {
		t.Fatalf("firebase auth: %v", err)
	}
	return c
}
