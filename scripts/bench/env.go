package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// installHint is how to get the outside programs the bench drives.
const installHint = "install them with: sudo apt-get install mosquitto mosquitto-clients gammu gammu-smsd"

// tools are the paths of the outside programs; "" means missing.
type tools struct {
	mosquitto, mosquittoPub, gammuSMSD string
}

func findTools() tools {
	look := func(names ...string) string {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p
			}
		}
		return ""
	}
	// Debian installs the broker in /usr/sbin, which a user's PATH may lack.
	return tools{
		mosquitto:    look("mosquitto", "/usr/sbin/mosquitto"),
		mosquittoPub: look("mosquitto_pub"),
		gammuSMSD:    look("gammu-smsd"),
	}
}

// freePort returns a loopback port that was free a moment ago, of network
// "tcp" or "udp".
func freePort(network string) (int, error) {
	switch network {
	case "tcp":
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free tcp port: %w", err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	default:
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free udp port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
}

// goBuild builds pkg into out the way `make build` does (CGO off,
// -trimpath, stripped), for goos/goarch/goarm ("" for the host).
func goBuild(ctx context.Context, root, out, pkg, goos, goarch, goarm string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if goos != "" {
		cmd.Env = append(cmd.Env, "GOOS="+goos, "GOARCH="+goarch, "GOARM="+goarm)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s/%s: %w\n%s", pkg, goos, goarch, err, b)
	}
	return nil
}

// broker is a mosquitto subprocess on a loopback port.
type broker struct {
	bin, dir string
	port     int
	persist  bool
	log      *slog.Logger

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

func (b *broker) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// startBroker starts mosquitto on a free loopback port. persist keeps
// sessions and queued QoS 1 messages across a restart (the soak restarts
// the broker and must not count what the broker dropped as lost).
func startBroker(bin, dir string, persist bool, log *slog.Logger) (*broker, error) {
	port, err := freePort("tcp")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("broker dir: %w", err)
	}
	b := &broker{bin: bin, dir: dir, port: port, persist: persist, log: log}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nlog_dest file %s\n",
		port, filepath.Join(dir, "mosquitto.log"))
	// Started as root, mosquitto drops to the user "mosquitto", which could
	// neither write its log nor save its persistence file here: keep the
	// bench's own user.
	if u, err := user.Current(); err == nil {
		conf += "user " + u.Username + "\n"
	}
	if persist {
		conf += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 0\n", dir)
	} else {
		conf += "persistence false\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.conf"), []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *broker) start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	cmd := exec.Command(b.bin, "-c", filepath.Join(b.dir, "mosquitto.conf"))
	out, err := os.OpenFile(filepath.Join(b.dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("broker log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start mosquitto: %w", err)
	}
	done := make(chan struct{})
	go func() {
		if err := cmd.Wait(); err != nil {
			b.log.Debug("mosquitto exited", "err", err)
		}
		out.Close()
		close(done)
	}()
	b.cmd, b.done = cmd, done
	addr := fmt.Sprintf("127.0.0.1:%d", b.port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-done:
			return fmt.Errorf("mosquitto exited at start (see %s)", filepath.Join(b.dir, "stderr.log"))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mosquitto does not accept connections on %s: %w", addr, err)
		}
	}
}

// stop ends mosquitto with SIGTERM (it saves its persistence file then).
func (b *broker) stop() error {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop mosquitto: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("kill mosquitto: %w", err)
		}
		<-done
		return errors.New("mosquitto ignored SIGTERM for 10s and was killed")
	}
}

// gwConfig is what varies between the gateway runs of the bench.
type gwConfig struct {
	DeviceID string
	Port     string // modem link
	Broker   string // MQTT URL
	StoreDir string
	IPMode   string // off, os, modem
	IPPort   int
	Cloud    string
	Bind     string
	LogLevel string
	// MaxMessages is store.max_messages; 0 keeps the default.
	MaxMessages int
}

func (c gwConfig) yaml() string {
	level := c.LogLevel
	if level == "" {
		level = "warn"
	}
	mode := c.IPMode
	if mode == "" {
		mode = "off"
	}
	port := c.IPPort
	if port == 0 {
		port = 6969
	}
	cloud := c.Cloud
	if cloud == "" {
		cloud = "100.64.0.1:6969"
	}
	maxMessages := ""
	if c.MaxMessages > 0 {
		maxMessages = fmt.Sprintf("  max_messages: %d\n", c.MaxMessages)
	}
	return fmt.Sprintf(`device_id: %q
modem:
  port: %q
  baud: 115200
  profile: quectel
sms:
  enabled: true
  allowed_senders: ["000"]
ip:
  mode: %s
  port: %d
  apn: super
  cloud: %q
  bind: %q
mqtt:
  url: %q
  client_id: %q
store:
  dir: %q
%slog:
  level: %s
`, c.DeviceID, c.Port, mode, port, cloud, c.Bind, c.Broker, "simgate-"+c.DeviceID, c.StoreDir, maxMessages, level)
}

// gateway is a simgate run subprocess with a notify socket of its own, so
// the bench sees READY=1 as systemd would.
type gateway struct {
	cmd     *exec.Cmd
	started time.Time
	logPath string
	notify  *net.UnixConn

	ready     chan struct{}
	readyAt   time.Time
	readyOnce sync.Once
	exited    chan struct{}
	exitErr   error
}

// startGateway writes c to dir/simgate.yaml and starts bin run on it.
func startGateway(bin, dir string, c gwConfig) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("gateway dir: %w", err)
	}
	cfgPath := filepath.Join(dir, "simgate.yaml")
	if err := os.WriteFile(cfgPath, []byte(c.yaml()), 0o644); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	sock := filepath.Join(dir, "notify.sock")
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("notify socket: %w", err)
	}
	g := &gateway{logPath: filepath.Join(dir, "simgate.log"), notify: nc, ready: make(chan struct{}), exited: make(chan struct{})}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("gateway log: %w", err)
	}
	g.cmd = exec.Command(bin, "run", "-config", cfgPath)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	go g.readNotify()
	g.started = time.Now()
	if err := g.cmd.Start(); err != nil {
		nc.Close()
		logf.Close()
		return nil, fmt.Errorf("start simgate: %w", err)
	}
	go func() {
		g.exitErr = g.cmd.Wait()
		logf.Close()
		close(g.exited)
	}()
	return g, nil
}

func (g *gateway) pid() int { return g.cmd.Process.Pid }

func (g *gateway) readNotify() {
	buf := make([]byte, 4096)
	for {
		n, _, err := g.notify.ReadFromUnix(buf)
		if err != nil {
			return
		}
		if notifyReady(buf[:n]) {
			now := time.Now()
			g.readyOnce.Do(func() {
				g.readyAt = now
				close(g.ready)
			})
		}
	}
}

// notifyReady tells whether an sd_notify datagram (newline-separated
// assignments) holds READY=1.
func notifyReady(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		if string(bytes.TrimSpace(l)) == "READY=1" {
			return true
		}
	}
	return false
}

// waitReady waits for READY=1 and returns the time from process start.
func (g *gateway) waitReady(timeout time.Duration) (time.Duration, error) {
	select {
	case <-g.ready:
		return g.readyAt.Sub(g.started), nil
	case <-g.exited:
		return 0, fmt.Errorf("simgate exited before READY=1 (%v); log:\n%s", g.exitErr, g.tail())
	case <-time.After(timeout):
		return 0, fmt.Errorf("no READY=1 within %s; log:\n%s", timeout, g.tail())
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (g *gateway) stop() error {
	defer g.notify.Close()
	select {
	case <-g.exited:
		return fmt.Errorf("simgate had already exited: %v; log:\n%s", g.exitErr, g.tail())
	default:
	}
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop simgate: %w", err)
	}
	select {
	case <-g.exited:
		if g.exitErr != nil {
			return fmt.Errorf("simgate stopped with %v; log:\n%s", g.exitErr, g.tail())
		}
		return nil
	case <-time.After(30 * time.Second):
		if err := g.cmd.Process.Kill(); err != nil {
			return fmt.Errorf("kill simgate: %w", err)
		}
		<-g.exited
		return fmt.Errorf("simgate did not stop within 30s of SIGTERM and was killed; log:\n%s", g.tail())
	}
}

// tail is the end of the gateway's log, for error messages.
func (g *gateway) tail() string {
	b, err := os.ReadFile(g.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// gitDescribe returns the commit the bench ran on, for the report.
func gitDescribe(root string) string {
	out, err := exec.Command("git", "-C", root, "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// lastCommit returns the newest commit touching paths, as "hash subject".
func lastCommit(root string, paths ...string) string {
	args := append([]string{"-C", root, "log", "-1", "--format=%h %s", "--"}, paths...)
	out, err := exec.Command("git", args...).Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		return "none"
	}
	return strings.TrimSpace(string(out))
}

// exportRev writes the tree of rev into dir with git archive, so the
// daemon measured is a commit, not whatever is half-edited in the work
// tree.
func exportRev(ctx context.Context, root, rev, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("export %s: %w", rev, err)
	}
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", rev)
	untar := exec.CommandContext(ctx, "tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", fmt.Errorf("export %s: %w", rev, err)
	}
	untar.Stdin = pipe
	var aerr, terr bytes.Buffer
	archive.Stderr, untar.Stderr = &aerr, &terr
	if err := untar.Start(); err != nil {
		return "", fmt.Errorf("export %s: tar: %w", rev, err)
	}
	if err := archive.Run(); err != nil {
		return "", errors.Join(fmt.Errorf("export %s: git archive: %w: %s", rev, err, aerr.String()), untar.Wait())
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("export %s: tar: %w: %s", rev, err, terr.String())
	}
	return dir, nil
}

// revParse returns the short hash of rev.
func revParse(root, rev string) (string, error) {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short=12", rev).Output()
	if err != nil {
		return "", fmt.Errorf("rev-parse %s: %w", rev, err)
	}
	return strings.TrimSpace(string(out)), nil
}
