package store

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisOptions tunes NewRedis. The zero value is what production wants.
type RedisOptions struct {
	// Prefix namespaces every key and the revocation channel, so several
	// deployments can share one Redis. Default "stepgate:".
	Prefix string
	// TLS configures rediss:// connections, for example RootCAs for a
	// private CA. ServerName defaults to the URL's host, and certificates
	// are always verified. Ignored for redis://.
	TLS *tls.Config
	// Timeouts for one connection attempt and for each read and write.
	// The hot path never waits on Redis, but a revocation or a held
	// transaction must fail fast when Redis is away. Defaults 1s, 500ms,
	// 500ms.
	DialTimeout, ReadTimeout, WriteTimeout time.Duration
}

// Timing of Watch's liveness check: a PING on the subscription whenever it
// has been quiet for watchPing, and the subscription declared dead when
// nothing at all has arrived for watchDead. A dead connection is noticed
// within watchDead plus one watchPing, about 2s.
const (
	watchPing = 500 * time.Millisecond
	watchDead = 1500 * time.Millisecond
)

// Redis is a Store on Redis (or Valkey) 7 or later, shared by replicas.
//
// Keys, under the prefix:
//
//	revocations          hash: "sid:ID" | "idp:ID" | "sub:ID" → "BEFORE EXPIRES"
//	revocations:expiry   sorted set of the same fields, scored by EXPIRES
//	claim:KEY            single-use records (SET NX PX)
//	value:KEY            held values
//	session:SID          tracked sessions, JSON, with their TTL
//	subject:SUB          set of the subject's tracked SIDs
//
// BEFORE and EXPIRES are Unix microseconds (BEFORE is 0 except for subject
// revocations): exact in Lua's doubles, so scripts compare and merge them
// without rounding. Every revocation is published on the channel
// PREFIX+"revocations" as "BEFORE EXPIRES FIELD".
type Redis struct {
	c       *redis.Client
	prefix  string
	channel string
	done    chan struct{} // closed by Close, to end Watch calls
	closing atomic.Bool
}

// NewRedis connects to the Redis at rawURL, redis://[user:pass@]host:port/db
// or rediss://… for TLS, and checks that it answers. Errors never contain
// the password.
func NewRedis(ctx context.Context, rawURL string, opt RedisOptions) (*Redis, error) {
	o, err := redisOptions(rawURL, opt)
	if err != nil {
		return nil, err
	}
	prefix := opt.Prefix
	if prefix == "" {
		prefix = "stepgate:"
	}
	r := &Redis{c: redis.NewClient(o), prefix: prefix, channel: prefix + "revocations", done: make(chan struct{})}
	if err := r.c.Ping(ctx).Err(); err != nil {
		r.c.Close()
		return nil, fmt.Errorf("store: redis at %s: %w", o.Addr, err)
	}
	return r, nil
}

// redisOptions parses the URL by hand rather than with redis.ParseURL: the
// standard parser's errors quote the whole URL, password included, and
// go-redis honours query options such as skip_verify, which would let a
// URL turn certificate checks off.
func redisOptions(rawURL string, opt RedisOptions) (*redis.Options, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL
		}
		return nil, fmt.Errorf("store: redis URL does not parse: %v", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("store: redis URL scheme must be redis or rediss; got %q", u.Scheme)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return nil, errors.New("store: redis URL takes no query or fragment: redis://[user:pass@]host:port/db")
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, errors.New("store: redis URL has no host")
	}
	if port == "" {
		port = "6379"
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("store: redis URL port must be 1-65535; got %q", port)
	}
	db := 0
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		db, err = strconv.Atoi(p)
		if err != nil || db < 0 {
			return nil, fmt.Errorf("store: redis URL path must be a database number; got %q", u.Path)
		}
	}
	o := &redis.Options{
		Addr:         net.JoinHostPort(host, port),
		DB:           db,
		ClientName:   "stepgate",
		DialTimeout:  orDefault(opt.DialTimeout, time.Second),
		ReadTimeout:  orDefault(opt.ReadTimeout, 500*time.Millisecond),
		WriteTimeout: orDefault(opt.WriteTimeout, 500*time.Millisecond),
		// One dial per attempt and one retry per command: enough to step
		// over a pooled connection that died with a restarted Redis, and a
		// bounded wait when Redis is gone.
		DialerRetries:   1,
		MaxRetries:      1,
		MinRetryBackoff: 10 * time.Millisecond,
		MaxRetryBackoff: 100 * time.Millisecond,
		// A caller's deadline bounds the network wait too.
		ContextTimeoutEnabled: true,
		// No CLIENT SETINFO (unknown before Redis 7.2) and no maintenance
		// notifications, which would let the server move the client to
		// another endpoint.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	if u.User != nil {
		o.Username = u.User.Username()
		o.Password, _ = u.User.Password()
	}
	if u.Scheme == "rediss" {
		var conf *tls.Config
		if opt.TLS != nil {
			conf = opt.TLS.Clone()
		} else {
			conf = &tls.Config{}
		}
		if conf.ServerName == "" {
			conf.ServerName = host
		}
		conf.MinVersion = max(conf.MinVersion, tls.VersionTLS12)
		conf.InsecureSkipVerify = false
		o.TLSConfig = conf
	}
	return o, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// wrap names the operation that failed; use after Close is ErrClosed.
func (r *Redis) wrap(op string, err error) error {
	if errors.Is(err, redis.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("store: redis %s: %w", op, err)
}

func (r *Redis) closed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// prune, the part every revocation script starts with: drop up to 1000
// revocations that have expired (KEYS[1] the hash, KEYS[2] the expiry set,
// now in microseconds).
const pruneLua = `
local function prune(now)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
  if #gone > 0 then
    redis.call('HDEL', KEYS[1], unpack(gone))
    redis.call('ZREM', KEYS[2], unpack(gone))
  end
end
`

// revokeScript merges one revocation into the hash (the later BEFORE and
// the later EXPIRES win), keeps both keys until the last revocation may be
// forgotten, and publishes the merged value, all atomically.
//
// KEYS: hash, expiry set. ARGV: field, before, expires, now, channel.
var revokeScript = redis.NewScript(pruneLua + `
prune(ARGV[4])
local before, expires = ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local ob, oe = string.match(old, '^(%d+) (%d+)$')
  if ob then
    if tonumber(ob) > tonumber(before) then before = ob end
    if tonumber(oe) > tonumber(expires) then expires = oe end
  end
end
local v = before .. ' ' .. expires
redis.call('HSET', KEYS[1], ARGV[1], v)
redis.call('ZADD', KEYS[2], expires, ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local at = math.floor(tonumber(last[2]) / 1000) + 1
redis.call('PEXPIREAT', KEYS[1], at)
redis.call('PEXPIREAT', KEYS[2], at)
redis.call('PUBLISH', ARGV[5], v .. ' ' .. ARGV[1])
return v
`)

// listScript prunes, then returns the whole hash.
//
// KEYS: hash, expiry set. ARGV: now.
var listScript = redis.NewScript(pruneLua + `
prune(ARGV[1])
return redis.call('HGETALL', KEYS[1])
`)

func (r *Redis) revocationKeys() []string {
	return []string{r.prefix + "revocations", r.prefix + "revocations:expiry"}
}

// Revoke merges r into the shared list and publishes it to every replica.
func (r *Redis) Revoke(ctx context.Context, rev Revocation) error {
	if err := rev.check(); err != nil {
		return err
	}
	rev = rev.normalize()
	kind, id := rev.key()
	before := int64(0)
	if kind == kindSubject {
		before = rev.Before.UnixMicro()
	}
	err := revokeScript.Run(ctx, r.c, r.revocationKeys(),
		kind+":"+id, before, rev.Expires.UnixMicro(), time.Now().UnixMicro(), r.channel).Err()
	if err != nil {
		return r.wrap("revoke", err)
	}
	return nil
}

// Revocations lists the revocations in force.
func (r *Redis) Revocations(ctx context.Context) ([]Revocation, error) {
	now := time.Now()
	flat, err := listScript.Run(ctx, r.c, r.revocationKeys(), now.UnixMicro()).StringSlice()
	if err != nil {
		return nil, r.wrap("list revocations", err)
	}
	list := make([]Revocation, 0, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		rev, err := parseRevocation(flat[i], flat[i+1])
		if err != nil {
			return nil, err
		}
		if now.Before(rev.Expires) {
			list = append(list, rev)
		}
	}
	sortRevocations(list)
	return list, nil
}

// parseRevocation reads one hash entry: field "KIND:ID", value
// "BEFORE EXPIRES".
func parseRevocation(field, value string) (Revocation, error) {
	bad := func() (Revocation, error) {
		return Revocation{}, fmt.Errorf("store: unreadable revocation in redis: want \"KIND:ID\" = \"BEFORE EXPIRES\", got a %d-byte field and %q", len(field), value)
	}
	kind, id, ok := strings.Cut(field, ":")
	b, e, ok2 := strings.Cut(value, " ")
	if !ok || !ok2 || id == "" {
		return bad()
	}
	before, err1 := strconv.ParseInt(b, 10, 64)
	expires, err2 := strconv.ParseInt(e, 10, 64)
	if err1 != nil || err2 != nil || expires <= 0 {
		return bad()
	}
	rev := Revocation{Expires: time.UnixMicro(expires)}
	switch kind {
	case kindSID:
		rev.SID = id
	case kindIdPSID:
		rev.IdPSID = id
	case kindSubject:
		rev.Subject, rev.Before = id, time.UnixMicro(before)
	default:
		return bad()
	}
	if rev.check() != nil {
		return bad()
	}
	return rev, nil
}

// parseMessage reads one published revocation: "BEFORE EXPIRES KIND:ID".
func parseMessage(payload string) (Revocation, error) {
	b, rest, ok := strings.Cut(payload, " ")
	e, field, ok2 := strings.Cut(rest, " ")
	if !ok || !ok2 {
		return Revocation{}, fmt.Errorf("store: unreadable revocation message: want \"BEFORE EXPIRES KIND:ID\", got %d bytes", len(payload))
	}
	return parseRevocation(field, b+" "+e)
}

// Watch subscribes to the revocation channel. go-redis resubscribes by
// itself after a network error, silently; every subscribe confirmation is
// therefore taken as "(re)established" and followed by a full resync, so
// nothing published while the connection was down is missed. Revocations
// are written before they are published and the list is read after the
// subscription is confirmed, so nothing falls between the two.
//
// A quiet subscription is pinged; one that stays silent for watchDead is
// dead (a partition leaves the TCP connection open with nothing answering)
// and Watch returns, as it does on any other connection error.
func (r *Redis) Watch(ctx context.Context, onSync func([]Revocation), onRevoke func(Revocation)) error {
	if r.closed() {
		return ErrClosed
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ps := r.c.Subscribe(ctx, r.channel)
	defer ps.Close()
	// Receive does not watch ctx; closing the subscription ends it.
	stop := context.AfterFunc(ctx, func() { ps.Close() })
	defer stop()
	go func() {
		select {
		case <-r.done:
			cancel()
		case <-ctx.Done():
		}
	}()

	heard := time.Now()
	for {
		msg, err := ps.ReceiveTimeout(ctx, watchPing)
		if err != nil {
			switch {
			case r.closed():
				return ErrClosed
			case ctx.Err() != nil:
				return ctx.Err()
			case isTimeout(err):
				if time.Since(heard) >= watchDead {
					return fmt.Errorf("store: redis revocation feed silent for %v", time.Since(heard).Round(time.Millisecond))
				}
				if err := ps.Ping(ctx); err != nil {
					return r.wrap("ping the revocation feed", err)
				}
				continue
			default:
				return r.wrap("revocation feed", err)
			}
		}
		heard = time.Now()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				return fmt.Errorf("store: redis revocation feed: unexpected %s", m.Kind)
			}
			list, err := r.Revocations(ctx)
			if err != nil {
				return err
			}
			onSync(list)
		case *redis.Message:
			rev, err := parseMessage(m.Payload)
			if err != nil {
				// Someone else writes on our channel; resync rather than guess.
				return err
			}
			onRevoke(rev)
		case *redis.Pong:
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (r *Redis) claimKey(k string) string   { return r.prefix + "claim:" + k }
func (r *Redis) valueKey(k string) string   { return r.prefix + "value:" + k }
func (r *Redis) sessionKey(k string) string { return r.prefix + "session:" + k }
func (r *Redis) subjectKey(k string) string { return r.prefix + "subject:" + k }

// Claim is SET NX PX.
func (r *Redis) Claim(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	if err := errors.Join(checkKey(key), checkTTL(ttl)); err != nil {
		return false, err
	}
	first, err := r.c.SetArgs(ctx, r.claimKey(key), "1", redis.SetArgs{Mode: "NX", TTL: ttl}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, r.wrap("claim", err)
	}
	return first == "OK", nil
}

// Put is SET PX.
func (r *Redis) Put(ctx context.Context, key string, v []byte, ttl time.Duration) error {
	if err := errors.Join(checkKey(key), checkTTL(ttl)); err != nil {
		return err
	}
	if err := r.c.Set(ctx, r.valueKey(key), v, ttl).Err(); err != nil {
		return r.wrap("put", err)
	}
	return nil
}

// Get is GET.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	return r.value("get", r.c.Get(ctx, r.valueKey(key)))
}

// Take is GETDEL: of concurrent Takes, Redis gives the value to one.
func (r *Redis) Take(ctx context.Context, key string) ([]byte, bool, error) {
	if err := checkKey(key); err != nil {
		return nil, false, err
	}
	return r.value("take", r.c.GetDel(ctx, r.valueKey(key)))
}

func (r *Redis) value(op string, cmd *redis.StringCmd) ([]byte, bool, error) {
	v, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, r.wrap(op, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Delete is DEL.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := r.c.Del(ctx, r.valueKey(key)).Err(); err != nil {
		return r.wrap("delete", err)
	}
	return nil
}

// trackScript stores a session with its TTL and adds it to its subject's
// set, which lives as long as its longest-lived member.
//
// KEYS: session key, subject set. ARGV: JSON, ttl in ms, SID.
var trackScript = redis.NewScript(`
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
`)

// untrackScript drops set members whose session key has expired, unless a
// Track brought the key back since it was read.
//
// KEYS: subject set, then the members' session keys. ARGV: the SIDs.
var untrackScript = redis.NewScript(`
for i, sid in ipairs(ARGV) do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then
    redis.call('SREM', KEYS[1], sid)
  end
end
return 1
`)

// Track records s for ttl.
func (r *Redis) Track(ctx context.Context, s SessionInfo, ttl time.Duration) error {
	if err := errors.Join(checkSession(s), checkTTL(ttl)); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("store: encode session: %w", err)
	}
	err = trackScript.Run(ctx, r.c, []string{r.sessionKey(s.SID), r.subjectKey(s.Subject)},
		b, max(ttl.Milliseconds(), 1), s.SID).Err()
	if err != nil {
		return r.wrap("track", err)
	}
	return nil
}

// Sessions lists subject's live sessions, oldest first, and drops the set
// members whose session has expired.
func (r *Redis) Sessions(ctx context.Context, subject string) ([]SessionInfo, error) {
	if subject == "" {
		return nil, errors.New("store: Sessions needs a subject")
	}
	sids, err := r.c.SMembers(ctx, r.subjectKey(subject)).Result()
	if err != nil {
		return nil, r.wrap("list sessions", err)
	}
	if len(sids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(sids))
	for i, sid := range sids {
		keys[i] = r.sessionKey(sid)
	}
	vals, err := r.c.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, r.wrap("read sessions", err)
	}
	var list []SessionInfo
	var goneKeys, gone []string
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			goneKeys, gone = append(goneKeys, keys[i]), append(gone, sids[i])
			continue
		}
		var info SessionInfo
		if err := json.Unmarshal([]byte(s), &info); err != nil {
			return nil, fmt.Errorf("store: unreadable session in redis: %v", err)
		}
		// A SID tracked later under another subject is no longer this one's.
		if info.Subject == subject {
			list = append(list, info)
		}
	}
	if len(gone) > 0 {
		args := make([]any, len(gone))
		for i, sid := range gone {
			args[i] = sid
		}
		if err := untrackScript.Run(ctx, r.c, append([]string{r.subjectKey(subject)}, goneKeys...), args...).Err(); err != nil {
			return nil, r.wrap("drop expired sessions", err)
		}
	}
	sortSessions(list)
	return list, nil
}

// Ping is PING.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.c.Ping(ctx).Err(); err != nil {
		return r.wrap("ping", err)
	}
	return nil
}

// Close closes the connections and ends every Watch.
func (r *Redis) Close() error {
	if !r.closing.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(r.done)
	if err := r.c.Close(); err != nil {
		return r.wrap("close", err)
	}
	return nil
}
