package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/simgate/simgate/internal/backoff"
	"github.com/simgate/simgate/internal/gw"
)

// Tuning of the UDP receiver.
const (
	// udpReadSize exceeds the largest UDP payload (65,527 bytes over IPv6),
	// so an oversize datagram is seen whole and reported with its size
	// instead of being cut to a valid-looking 1300 bytes.
	udpReadSize = 64 << 10
	// udpReadBuffer is asked of the kernel for the socket's receive buffer,
	// to absorb a burst while a commit syncs; the kernel caps it at
	// net.core.rmem_max.
	udpReadBuffer = 1 << 20
	// udpPipeline bounds datagrams read but not yet stored. When it is full
	// the reader waits and the kernel's buffer takes the rest.
	udpPipeline = 4096
	// udpMaxBatch caps the datagrams stored in one commit.
	udpMaxBatch = 512
	// udpStoreTimeout bounds one attempt to hand a batch to the sink.
	udpStoreTimeout = 30 * time.Second
	// udpHealthGrace is how long the socket may stay down, or one store call
	// last, before Healthy reports a problem.
	udpHealthGrace = time.Minute
	// udpEventEvery is the least time between two events of one type; the
	// ones in between are counted and logged at debug level, so a flood of
	// rejected datagrams does not become a flood of MQTT messages.
	udpEventEvery = 10 * time.Second
	// Bounds of the backoff between attempts to reopen the socket.
	udpBackoffMin = 50 * time.Millisecond
	udpBackoffMax = 10 * time.Second
)

// udpStoreRetries are the pauses before each retry of a failed store.
var udpStoreRetries = []time.Duration{100 * time.Millisecond, 400 * time.Millisecond, 1600 * time.Millisecond}

// UDPConfig configures the receiver of IP Commands in ip.mode os.
type UDPConfig struct {
	// Port is the device port IP Commands are sent to (ip.port). 0 lets the
	// kernel pick a free port, kept across reopens; Port reports it.
	Port int
	// Bind is the local address to bind (ip.bind); "" binds all addresses,
	// so a new link address after a PPP or wwan reconnect keeps working.
	Bind string
	// Cloud is where Send sends, "host:port" (ip.cloud).
	Cloud string
	// AllowedSources are the networks accepted as senders
	// (ip.allowed_sources); empty accepts any.
	AllowedSources []netip.Prefix
	// OnEvent, when set, hears about rejected datagrams, store failures and
	// socket recovery. It is called from the receiver's two goroutines, so it
	// must be safe for concurrent use, and must not block.
	OnEvent func(gw.Event)
}

// UDPStats counts what the receiver did since it was created.
type UDPStats struct {
	Received       uint64 // datagrams read from the socket
	Stored         uint64 // messages the sink accepted (a known ID included)
	SourceRejected uint64 // dropped: source not in AllowedSources
	Oversize       uint64 // dropped: over gw.MaxUDPPayload bytes
	Dropped        uint64 // dropped: the sink refused them (full) or kept failing
	Reopens        uint64 // times the socket was opened again after a loss
}

// UDP receives IP Commands on a UDP socket of this host and stores each
// datagram durably, in arrival order, in a gw.Sink; it sends
// device-originated IP Commands from the same socket. Create it with
// NewUDP, then call Run once.
type UDP struct {
	cfg     UDPConfig
	sink    gw.Sink
	batch   BatchSink // sink, when it stores batches
	log     *slog.Logger
	bind    netip.Addr     // invalid: all addresses
	cloud   netip.AddrPort // valid when ip.cloud is an address literal
	host    string         // ip.cloud's host, resolved per Send when not a literal
	cport   uint16
	allowed []netip.Prefix
	port    int // the bound port, kept across reopens
	base    time.Time
	now     func() time.Time // wall clock for ReceivedAt

	mu        sync.Mutex
	conn      *net.UDPConn // nil while down
	closed    bool         // Close was called or Run returned: no reopening
	stopping  bool         // Run's context is done
	downSince time.Time
	downErr   error
	resolved  netip.AddrPort // last resolution of a ip.cloud host name

	sendMu  sync.Mutex   // one Send at a time: each sets the write deadline
	started atomic.Bool  // Run was called
	running atomic.Bool  // Run is receiving
	storing atomic.Int64 // mono time a store call started, 0 when idle

	lastStamp time.Time // receiving goroutine only
	limiter   eventLimiter

	received, stored, rejected, oversize, dropped, reopens atomic.Uint64
}

// NewUDP checks cfg and binds the socket, so a port in use or a bad address
// is reported at start. Datagrams that arrive before Run are held by the
// kernel. sink is usually the Queue; a sink that implements BatchSink
// stores bursts in few commits, any other is given one Put at a time.
func NewUDP(cfg UDPConfig, sink gw.Sink, log *slog.Logger) (*UDP, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if sink == nil {
		return nil, errors.New("udp: no sink")
	}
	u := &UDP{cfg: cfg, sink: sink, log: log, base: time.Now(), now: time.Now}
	u.batch, _ = sink.(BatchSink)
	u.limiter = eventLimiter{every: udpEventEvery, now: time.Now}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("udp: ip.port %d is not a port number", cfg.Port)
	}
	u.port = cfg.Port
	if cfg.Bind != "" {
		a, err := netip.ParseAddr(cfg.Bind)
		if err != nil {
			return nil, fmt.Errorf("udp: ip.bind %q is not an IP address: %w", cfg.Bind, err)
		}
		u.bind = a.Unmap()
	}
	if err := u.parseCloud(cfg.Cloud); err != nil {
		return nil, err
	}
	for _, p := range cfg.AllowedSources {
		if !p.IsValid() {
			return nil, fmt.Errorf("udp: ip.allowed_sources holds an invalid prefix %q", p)
		}
		if p.Addr().Is4In6() {
			// ::ffff:10.0.0.0/104 names IPv4 senders, which are matched unmapped.
			bits := p.Bits() - 96
			if bits < 0 {
				bits = 0
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), bits)
		}
		u.allowed = append(u.allowed, p.Masked())
	}
	c, err := u.listen()
	if err != nil {
		return nil, err
	}
	if a, ok := c.LocalAddr().(*net.UDPAddr); ok {
		u.port = a.Port
	}
	u.conn = c
	log.Info("udp socket open", "addr", c.LocalAddr().String(), "cloud", cfg.Cloud,
		"allowed_sources", len(u.allowed), "batch", u.batch != nil)
	return u, nil
}

func (u *UDP) parseCloud(s string) error {
	if s == "" {
		return errors.New("udp: ip.cloud is empty; it must be host:port")
	}
	host, ps, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("udp: ip.cloud %q is not host:port: %w", s, err)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return fmt.Errorf("udp: ip.cloud %q: port %q is not a port number from 1 to 65535", s, ps)
	}
	if host == "" {
		return fmt.Errorf("udp: ip.cloud %q has no host", s)
	}
	u.host, u.cport = host, uint16(port)
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return fmt.Errorf("udp: ip.cloud %q: %s is not an address to send to", s, a)
		}
		u.cloud = netip.AddrPortFrom(a.Unmap(), uint16(port))
	}
	return nil
}

// listen binds the socket on the configured address and port.
func (u *UDP) listen() (*net.UDPConn, error) {
	network, laddr := "udp", &net.UDPAddr{Port: u.port}
	if u.bind.IsValid() {
		network = "udp6"
		if u.bind.Is4() {
			network = "udp4"
		}
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(u.bind, uint16(u.port)))
	}
	c, err := net.ListenUDP(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("udp: listen on %s: %w", laddr, err)
	}
	if err := c.SetReadBuffer(udpReadBuffer); err != nil {
		// Not fatal: the default buffer only absorbs a shorter burst.
		u.log.Debug("udp receive buffer not enlarged", "err", err)
	}
	return c, nil
}

// Port is the port the socket is bound to.
func (u *UDP) Port() int { return u.port }

// Stats returns the counters.
func (u *UDP) Stats() UDPStats {
	return UDPStats{
		Received:       u.received.Load(),
		Stored:         u.stored.Load(),
		SourceRejected: u.rejected.Load(),
		Oversize:       u.oversize.Load(),
		Dropped:        u.dropped.Load(),
		Reopens:        u.reopens.Load(),
	}
}

// Close closes the socket. It is for a UDP whose Run never ran or has
// returned; a running receiver is stopped by cancelling Run's context.
func (u *UDP) Close() error {
	u.mu.Lock()
	c := u.conn
	u.conn, u.closed = nil, true
	u.mu.Unlock()
	if c == nil {
		return nil
	}
	if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("udp: close: %w", err)
	}
	return nil
}

// Run receives until ctx is cancelled, then stores what it has read and
// closes the socket. A read error does not end it: the socket is reopened
// with backoff. It returns nil after ctx is cancelled; Run runs once.
func (u *UDP) Run(ctx context.Context) error {
	if !u.started.CompareAndSwap(false, true) {
		return errors.New("udp: Run called twice")
	}
	u.mu.Lock()
	closed := u.closed
	u.mu.Unlock()
	if closed {
		return errors.New("udp: Run after Close")
	}
	u.running.Store(true)
	defer u.running.Store(false)

	stop := context.AfterFunc(ctx, func() {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.stopping = true
		if u.conn != nil {
			// A deadline in the past wakes the blocked read; the socket
			// stays open until what was read is stored.
			if err := u.conn.SetReadDeadline(time.Unix(1, 0)); err != nil {
				u.log.Debug("udp read deadline", "err", err)
			}
		}
	})
	defer stop()

	items := make(chan gw.Inbound, udpPipeline)
	stored := make(chan struct{})
	go func() {
		defer close(stored)
		u.store(items)
	}()
	u.receive(ctx, items)
	close(items)
	<-stored
	if err := u.Close(); err != nil {
		return err
	}
	u.log.Info("udp receiver stopped", "stats", fmt.Sprintf("%+v", u.Stats()))
	return nil
}

// receive reads datagrams and queues them for storing, in arrival order,
// until ctx is done or the UDP is closed.
func (u *UDP) receive(ctx context.Context, items chan<- gw.Inbound) {
	buf := make([]byte, udpReadSize)
	bo := backoff.Backoff{Min: udpBackoffMin, Max: udpBackoffMax, Spread: backoff.Below}
	var openedAt time.Time
	u.mu.Lock()
	c := u.conn
	u.mu.Unlock()
	for {
		if c == nil {
			if c = u.reopen(ctx, &bo); c == nil {
				return
			}
			openedAt = time.Now()
		}
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if ctx.Err() != nil || u.isClosed() {
				return
			}
			if !openedAt.IsZero() && time.Since(openedAt) > udpHealthGrace {
				bo.Reset() // the last reopen held; start the backoff afresh
			}
			u.lost(c, err)
			c = nil
			continue
		}
		bo.Reset()
		u.received.Add(1)
		m, rej := u.accept(from, buf[:n], u.stamp())
		if rej != nil {
			u.event(rej.typ, rej.msg, rej.fields)
			continue
		}
		// The storing goroutine drains items until it is closed, so this
		// send finishes even after ctx is done: a datagram read is stored.
		items <- m
	}
}

func (u *UDP) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed || u.stopping
}

// lost closes a socket that failed and marks it down.
func (u *UDP) lost(c *net.UDPConn, err error) {
	u.mu.Lock()
	if u.conn == c {
		u.conn, u.downSince, u.downErr = nil, time.Now(), err
	}
	u.mu.Unlock()
	if cerr := c.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = errors.Join(err, cerr)
	}
	u.event(gw.EventIPSocketLost, fmt.Sprintf("reading the IP Command socket on port %d failed: %v; reopening it", u.port, err),
		map[string]any{"port": u.port, "error": err.Error()})
}

// reopen binds the socket again, with jittered backoff, until it succeeds
// or Run is stopped (then it returns nil). The first attempt comes quickly,
// as a closed socket usually reopens at once; persistent failures slow down
// to udpBackoffMax.
func (u *UDP) reopen(ctx context.Context, bo *backoff.Backoff) *net.UDPConn {
	for attempt := 1; ; attempt++ {
		if !backoff.Wait(ctx.Done(), bo.Next()) {
			return nil
		}
		c, err := u.listen()
		u.mu.Lock()
		if u.closed || u.stopping {
			u.mu.Unlock()
			if c != nil {
				if cerr := c.Close(); cerr != nil {
					u.log.Debug("udp close after stop", "err", cerr)
				}
			}
			return nil
		}
		if err != nil {
			u.downErr = err
			u.mu.Unlock()
			u.log.Warn("udp socket reopen failed", "err", err, "attempt", attempt)
			continue
		}
		down := time.Since(u.downSince)
		u.conn, u.downSince, u.downErr = c, time.Time{}, nil
		u.mu.Unlock()
		u.reopens.Add(1)
		u.event(gw.EventIPSocketReopened, fmt.Sprintf("the IP Command socket on port %d is open again after %s", u.port, down.Round(time.Millisecond)),
			map[string]any{"port": u.port, "attempts": attempt})
		return c
	}
}

// stamp is the arrival time of a datagram. Two datagrams never get the same
// stamp within a millisecond of each other, so identical datagrams from one
// sender read back to back on a coarse clock still get distinct IDs; a
// clock stepped back further is followed as it is.
func (u *UDP) stamp() time.Time {
	t := u.now().UTC()
	if !t.After(u.lastStamp) && u.lastStamp.Sub(t) < time.Millisecond {
		t = u.lastStamp.Add(time.Nanosecond)
	}
	u.lastStamp = t
	return t
}

// rejection says why a datagram was dropped.
type rejection struct {
	typ, msg string
	fields   map[string]any
}

// accept turns one datagram read from the network into a message, or
// reports why it is refused. p is copied.
func (u *UDP) accept(from netip.AddrPort, p []byte, at time.Time) (gw.Inbound, *rejection) {
	src := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if len(u.allowed) > 0 && !allowedSource(u.allowed, src.Addr()) {
		u.rejected.Add(1)
		return gw.Inbound{}, &rejection{gw.EventSourceRejected,
			fmt.Sprintf("IP Command from %s dropped: the source is not in ip.allowed_sources", src),
			map[string]any{"from": src.String(), "port": u.port, "size": len(p)}}
	}
	if len(p) > gw.MaxUDPPayload {
		u.oversize.Add(1)
		return gw.Inbound{}, &rejection{gw.EventIPOversize,
			fmt.Sprintf("IP Command from %s dropped: it is %d bytes, one IP Command holds at most %d", src, len(p), gw.MaxUDPPayload),
			map[string]any{"from": src.String(), "port": u.port, "size": len(p)}}
	}
	m := gw.Inbound{
		Channel:    gw.ChannelIP,
		From:       src.String(),
		Port:       u.port,
		Payload:    append([]byte{}, p...),
		Binary:     !gw.IsText(p),
		ReceivedAt: at,
	}
	m.ID = gw.MessageID(m)
	return m, nil
}

func allowedSource(allowed []netip.Prefix, a netip.Addr) bool {
	a = a.WithZone("")
	for _, p := range allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// store hands what receive read to the sink, in batches of whatever queued
// up while the previous commit synced, until items is closed and drained.
func (u *UDP) store(items <-chan gw.Inbound) {
	batch := make([]gw.Inbound, 0, udpMaxBatch)
	for m := range items {
		batch = append(batch[:0], m)
	more:
		for len(batch) < udpMaxBatch {
			select {
			case m, ok := <-items:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		u.commit(batch)
	}
}

// commit stores ms, in order, durably. A refusal for a full queue drops the
// message (the Queue reports "queue_full"); any other failure is retried
// briefly, then the messages are dropped with an event.
func (u *UDP) commit(ms []gw.Inbound) {
	u.storing.Store(int64(time.Since(u.base)) + 1)
	defer u.storing.Store(0)
	if u.batch != nil {
		var res []error
		err := retryStore(func(ctx context.Context) error {
			var err error
			res, err = u.batch.PutBatch(ctx, ms)
			return err
		})
		if err != nil {
			u.failed(ms, err)
			return
		}
		var full, bad []gw.Inbound
		var fullErr, badErr error
		for i, r := range res {
			switch {
			case r == nil:
				u.stored.Add(1)
			case errors.Is(r, ErrQueueFull):
				full, fullErr = append(full, ms[i]), r
			default:
				bad, badErr = append(bad, ms[i]), r
			}
		}
		if len(full) > 0 {
			u.refused(full, fullErr)
		}
		if len(bad) > 0 {
			u.failed(bad, badErr)
		}
		return
	}
	for _, m := range ms {
		err := retryStore(func(ctx context.Context) error { return u.sink.Put(ctx, m) })
		switch {
		case err == nil:
			u.stored.Add(1)
		case errors.Is(err, ErrQueueFull):
			u.refused([]gw.Inbound{m}, err)
		default:
			u.failed([]gw.Inbound{m}, err)
		}
	}
}

// retryStore runs put, and again after each pause of udpStoreRetries while
// it fails with an error that waiting may cure.
func retryStore(put func(ctx context.Context) error) error {
	var err error
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), udpStoreTimeout)
		err = put(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrQueueFull) || errors.Is(err, ErrClosed) || i == len(udpStoreRetries) {
			return err
		}
		time.Sleep(udpStoreRetries[i])
	}
}

// refused logs datagrams the full queue turned away; the queue itself
// reports "queue_full". While the queue stays full every batch is refused,
// so the warning is limited like an event.
func (u *UDP) refused(ms []gw.Inbound, err error) {
	n := u.dropped.Add(uint64(len(ms)))
	level := slog.LevelDebug
	if show, _ := u.limiter.allow("log:queue_full"); show {
		level = slog.LevelWarn
	}
	u.log.Log(context.Background(), level, "IP Commands dropped: queue full", "count", len(ms), "first", ms[0].ID,
		"from", ms[0].From, "dropped_total", n, "err", err)
}

// failed reports datagrams the sink could not store.
func (u *UDP) failed(ms []gw.Inbound, err error) {
	u.dropped.Add(uint64(len(ms)))
	u.log.Error("IP Commands dropped: store failed", "count", len(ms), "first", ms[0].ID, "from", ms[0].From, "err", err)
	u.event(gw.EventIPStoreFailed, fmt.Sprintf("%d IP Command(s) dropped: storing them failed: %v", len(ms), err),
		map[string]any{"count": len(ms), "error": err.Error()})
}

// event logs and reports, at most once per udpEventEvery for each type.
func (u *UDP) event(typ, msg string, fields map[string]any) {
	show, held := u.limiter.allow(typ)
	if !show {
		u.log.Debug(msg, "event", typ)
		return
	}
	if fields == nil {
		fields = map[string]any{}
	}
	if held > 0 {
		msg = fmt.Sprintf("%s (and %d more since the last such report)", msg, held)
		fields["suppressed"] = held
	}
	u.log.Warn(msg, "event", typ)
	if u.cfg.OnEvent != nil {
		u.cfg.OnEvent(gw.Event{Type: typ, Message: msg, Time: time.Now().UTC(), Fields: fields})
	}
}

// eventLimiter lets one event of each type through per period and counts
// the rest.
type eventLimiter struct {
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	last map[string]time.Time
	held map[string]int
}

// allow reports whether an event of typ may be sent now and, if so, how
// many were held back since the last one.
func (l *eventLimiter) allow(typ string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.held = map[string]time.Time{}, map[string]int{}
	}
	now := l.now()
	if last, ok := l.last[typ]; ok && now.Sub(last) < l.every {
		l.held[typ]++
		return false, 0
	}
	held := l.held[typ]
	l.last[typ], l.held[typ] = now, 0
	return true, held
}

// Send sends payload as one datagram to ip.cloud from the receiving socket,
// so its source port is the device port, as a module's socket would send.
// A nil error means the kernel took the datagram: UDP confirms no delivery.
func (u *UDP) Send(ctx context.Context, payload []byte) error {
	if err := gw.CheckUDP(payload); err != nil {
		return fmt.Errorf("send udp: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send udp: %w", err)
	}
	to, err := u.resolveCloud(ctx)
	if err != nil {
		return fmt.Errorf("send udp to %s: %w", u.cfg.Cloud, err)
	}
	u.mu.Lock()
	c, closed, downErr := u.conn, u.closed, u.downErr
	u.mu.Unlock()
	if c == nil {
		if closed {
			return fmt.Errorf("send udp to %s: socket closed", to)
		}
		return fmt.Errorf("send udp to %s: socket is down and being reopened: %w", to, downErr)
	}
	u.sendMu.Lock()
	defer u.sendMu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		if err := c.SetWriteDeadline(dl); err != nil {
			return fmt.Errorf("send udp to %s: %w", to, err)
		}
		defer func() {
			if err := c.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, net.ErrClosed) {
				u.log.Debug("udp write deadline", "err", err)
			}
		}()
	}
	n, err := c.WriteToUDPAddrPort(payload, to)
	if err != nil {
		return fmt.Errorf("send udp to %s: %w", to, err)
	}
	if n != len(payload) {
		return fmt.Errorf("send udp to %s: sent %d of %d bytes", to, n, len(payload))
	}
	return nil
}

// resolveCloud returns ip.cloud as an address, looking a host name up each
// time (caching is the system resolver's job) and preferring the socket's
// address family.
func (u *UDP) resolveCloud(ctx context.Context) (netip.AddrPort, error) {
	if u.cloud.IsValid() {
		return u.cloud, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %w", u.host, err)
	}
	if len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: no address", u.host)
	}
	pick := addrs[0].Unmap()
	if u.bind.IsValid() {
		for _, a := range addrs {
			if a.Unmap().Is4() == u.bind.Is4() {
				pick = a.Unmap()
				break
			}
		}
	}
	ap := netip.AddrPortFrom(pick, u.cport)
	u.mu.Lock()
	u.resolved = ap
	u.mu.Unlock()
	return ap, nil
}

// Data reports the data path for P/status: "up" while the socket is open
// and the cloud is routable, with the local address used to reach the
// cloud (or the bound address); "down" otherwise.
func (u *UDP) Data() gw.DataInfo {
	d := gw.DataInfo{Mode: "os", State: "down"}
	u.mu.Lock()
	open, cloud := u.conn != nil, u.cloud
	if !cloud.IsValid() {
		cloud = u.resolved
	}
	u.mu.Unlock()
	if !open {
		return d
	}
	if u.bind.IsValid() && !u.bind.IsUnspecified() {
		d.State, d.IP = "up", u.bind.String()
		return d
	}
	if !cloud.IsValid() {
		// A host name not yet resolved: nothing to route to, but the
		// socket receives.
		d.State = "up"
		return d
	}
	ip, err := localAddrTo(cloud)
	if err != nil {
		u.log.Debug("no route to the cloud", "cloud", cloud, "err", err)
		return d
	}
	d.State, d.IP = "up", ip.String()
	return d
}

// localAddrTo asks the kernel which local address reaches to: connecting a
// UDP socket picks a route without sending anything.
func localAddrTo(to netip.AddrPort) (netip.Addr, error) {
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", to, err)
	}
	la, _ := c.LocalAddr().(*net.UDPAddr)
	if err := c.Close(); err != nil {
		return netip.Addr{}, fmt.Errorf("route to %s: %w", to, err)
	}
	if la == nil {
		return netip.Addr{}, fmt.Errorf("route to %s: no local address", to)
	}
	return la.AddrPort().Addr().Unmap(), nil
}

// Healthy reports whether the receiver works, for the systemd watchdog: Run
// is receiving, the socket has not been down for udpHealthGrace, and no
// store call has lasted that long.
func (u *UDP) Healthy() error {
	if !u.running.Load() {
		return errors.New("udp receiver is not running")
	}
	u.mu.Lock()
	down, since, derr := u.conn == nil, u.downSince, u.downErr
	u.mu.Unlock()
	if down && !since.IsZero() {
		if d := time.Since(since); d > udpHealthGrace {
			return fmt.Errorf("udp socket on port %d down for %s: %w", u.port, d.Round(time.Second), derr)
		}
	}
	if s := u.storing.Load(); s != 0 {
		if d := time.Duration(int64(time.Since(u.base)) + 1 - s); d > udpHealthGrace {
			return fmt.Errorf("storing IP Commands has taken %s", d.Round(time.Second))
		}
	}
	return nil
}
