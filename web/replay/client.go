package replay

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Defaults applied when the Client fields are zero.
const (
	// DefaultTimeout bounds one whole exchange: dial, TLS, request,
	// redirects and reading the response body.
	DefaultTimeout = 10 * time.Second

	// DefaultMaxResponse is how many response body bytes an Attempt keeps.
	DefaultMaxResponse = 64 << 10

	// MaxRedirects is how many redirects Send follows when asked to.
	MaxRedirects = 5
)

// ErrorKind classifies why an Attempt failed; the empty kind means the
// target answered (whatever the status code).
type ErrorKind string

// Error kinds an Attempt can report.
const (
	// KindNone means no transport error: the target sent a response.
	KindNone ErrorKind = ""
	// KindRefusedByPolicy means the URL or an address was refused before
	// any connection was made.
	KindRefusedByPolicy ErrorKind = "refused_by_policy"
	// KindDNS means the host name could not be resolved.
	KindDNS ErrorKind = "dns"
	// KindConnectionRefused means nothing listened on the target port.
	KindConnectionRefused ErrorKind = "connection_refused"
	// KindTLS means the TLS handshake failed (untrusted certificate,
	// wrong host name, not a TLS server...).
	KindTLS ErrorKind = "tls"
	// KindTimeout means the exchange did not finish within the timeout.
	KindTimeout ErrorKind = "timeout"
	// KindTooManyRedirects means more than MaxRedirects redirects.
	KindTooManyRedirects ErrorKind = "too_many_redirects"
	// KindOther is any other failure.
	KindOther ErrorKind = "other"
)

// errTooManyRedirects stops the redirect chain after MaxRedirects hops.
var errTooManyRedirects = fmt.Errorf("stopped after %d redirects", MaxRedirects)

// Request is one outbound request: usually a stored event's raw body and
// headers sent to a replay target.
type Request struct {
	// URL is the target; only http and https are allowed.
	URL string

	// Method defaults to POST when empty, as replays resend webhook posts.
	Method string

	// Header is sent as given: keys keep their spelling on the wire
	// (HTTP/1.1 only is used) and values their order. net/http still owns
	// Host, Content-Length, Connection and Transfer-Encoding, trims spaces
	// around values, and on followed redirects adds Referer and drops
	// Authorization and Cookie when the host changes.
	Header http.Header

	// Body is sent byte for byte.
	Body []byte

	// FollowRedirects follows up to MaxRedirects redirects, re-checking
	// each hop. When false a 3xx is reported as the answer.
	FollowRedirects bool
}

// Attempt records the outcome of one Send. It is meant to be stored as a
// replay record and shown in the UI.
type Attempt struct {
	// URL is the requested URL (not the last redirect hop).
	URL string

	// RequestHeader is the header sent on the first hop, including the
	// User-Agent added by the Client.
	RequestHeader http.Header

	// StatusCode is the last response's status, or 0 if none arrived. With
	// a refused or failed redirect it is the status of the redirect response.
	StatusCode int

	// ResponseHeader is the last response's header, or nil.
	ResponseHeader http.Header

	// ResponseBody holds the first MaxResponse bytes of the body only.
	ResponseBody []byte

	// Truncated is true when the body was longer than MaxResponse.
	Truncated bool

	// Duration is the wall time of the whole exchange.
	Duration time.Duration

	// ErrorKind classifies a transport failure; KindNone if a response
	// arrived and its body was read.
	ErrorKind ErrorKind

	// Error is a short user message for ErrorKind, never response content.
	Error string
}

// Client sends outbound requests through the SSRF-guarded dialer. Set its
// fields before the first Send and do not change them afterwards: the
// policy is copied into the transport once. A Client is safe for
// concurrent use.
type Client struct {
	// Policy decides which resolved addresses may be dialled.
	Policy Policy

	// Timeout bounds the whole exchange; DefaultTimeout if zero.
	Timeout time.Duration

	// MaxResponse caps the response bytes kept; DefaultMaxResponse if zero.
	MaxResponse int64

	// UserAgent is sent when the request has no User-Agent of its own.
	UserAgent string

	// Resolver resolves host names; net.DefaultResolver if nil. Tests use
	// it to point at an in-process DNS server.
	Resolver *net.Resolver

	// dialHook is copied into the guard; see guard.hook.
	dialHook func(address string, verdict error) error

	once sync.Once
	g    *guard
	tr   *http.Transport
}

// setup builds the guard and the transport once.
func (c *Client) setup() {
	c.once.Do(func() {
		// Copy the policy so later edits to c.Policy cannot race with dials.
		p := Policy{
			Mode:  c.Policy.Mode,
			Allow: slices.Clone(c.Policy.Allow),
			Deny:  slices.Clone(c.Policy.Deny),
		}
		c.g = &guard{policy: p, hook: c.dialHook}

		// Every connection, including each Happy Eyeballs attempt and each
		// redirect hop, is checked by c.g.control right before connect.
		d := &net.Dialer{
			Resolver:       c.Resolver,
			KeepAlive:      30 * time.Second,
			ControlContext: c.g.control,
		}

		// HTTP/1.1 only, so header keys keep their spelling on the wire.
		var protos http.Protocols
		protos.SetHTTP1(true)

		c.tr = &http.Transport{
			Proxy:               nil, // never an environment proxy: it would dial for us
			DialContext:         dialContext(d),
			DisableCompression:  true, // keep the body exactly as the target sent it
			Protocols:           &protos,
			TLSHandshakeTimeout: DefaultTimeout,
			MaxIdleConns:        16,
			MaxIdleConnsPerHost: 2,
			IdleConnTimeout:     90 * time.Second,
		}
	})
}

// CloseIdleConnections closes kept-alive connections that are not in use,
// for example on shutdown.
func (c *Client) CloseIdleConnections() {
	c.setup()
	c.tr.CloseIdleConnections()
}

// timeout returns the configured or default timeout.
func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultTimeout
}

// maxResponse returns the configured or default response cap.
func (c *Client) maxResponse() int64 {
	if c.MaxResponse > 0 {
		return c.MaxResponse
	}
	return DefaultMaxResponse
}

// Send performs r and reports what happened. It never returns an error:
// every failure is described by Attempt.ErrorKind and Attempt.Error. A
// non-2xx answer is not an error here; callers judge StatusCode.
func (c *Client) Send(ctx context.Context, r Request) Attempt {
	c.setup()
	start := time.Now()
	a := Attempt{URL: r.URL}
	hop := ""               // the redirect hop being followed, for error messages
	var last *http.Response // the redirect response that led to hop

	// Bound the whole exchange, body included.
	timeout := c.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	finish := func(err error) Attempt {
		a.Duration = time.Since(start)
		if err == nil {
			return a
		}
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		a.ErrorKind, a.Error = classify(err, timedOut, timeout)
		if hop != "" && a.ErrorKind != KindTooManyRedirects {
			a.Error = "redirect to " + hop + ": " + a.Error
		}
		return a
	}

	// Refuse bad schemes and literal addresses before any socket exists;
	// host names are checked by the dialer on the addresses they resolve to.
	u, err := CheckURL(r.URL)
	if err != nil {
		return finish(err)
	}
	if err := c.checkTarget(u); err != nil {
		return finish(err)
	}

	// Build the request with the exact body and header.
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return finish(fmt.Errorf("build request: %w", err))
	}
	req.Header = requestHeader(r.Header, c.UserAgent)

	// Record what goes on the wire: an empty User-Agent is never written.
	a.RequestHeader = req.Header.Clone()
	if v := a.RequestHeader["User-Agent"]; len(v) == 1 && v[0] == "" {
		delete(a.RequestHeader, "User-Agent")
	}

	// Redirects: off unless asked; each hop's scheme and literal address
	// is re-checked here, and its resolved address by the dialer.
	hc := &http.Client{
		Transport: c.tr,
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if !r.FollowRedirects {
				return http.ErrUseLastResponse
			}
			hop, last = next.URL.Redacted(), next.Response
			if len(via) > MaxRedirects {
				return errTooManyRedirects
			}
			return c.checkTarget(next.URL)
		},
	}

	// A hop that fails to connect returns no response: report the
	// redirect that led there instead.
	resp, err := hc.Do(req)
	if resp == nil {
		resp = last
	}
	if resp != nil {
		a.StatusCode = resp.StatusCode
		a.ResponseHeader = resp.Header
	}
	if err != nil {
		return finish(err)
	}
	defer resp.Body.Close()

	// Keep the first MaxResponse bytes; reading one more tells us it was cut.
	limit := c.maxResponse()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if int64(len(body)) > limit {
		body, a.Truncated = body[:limit], true
	}
	a.ResponseBody = body
	if err != nil {
		return finish(fmt.Errorf("read response: %w", err))
	}

	// A redirect that is not followed is the answer. When it points where the policy refuses
	// to go (the metadata address, another scheme), it is reported as refused, as a followed hop
	// would be, so that the attempt says why and the refusal is audited.
	if !r.FollowRedirects && resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc, err := resp.Location(); err == nil {
			if err := c.checkTarget(loc); err != nil {
				hop = loc.Redacted()
				return finish(err)
			}
		}
	}
	return finish(nil)
}

// Check refuses raw as Send would before dialling: a scheme other than
// http or https, a missing host, or a host that is an IP literal (in any
// spelling) the policy refuses. It returns nil for a host name, whose
// addresses are checked when dialled, and a *RefusedError or a wrapped parse
// error otherwise. Callers use it to refuse a bulk replay before it starts.
func (c *Client) Check(raw string) error {
	c.setup()
	u, err := CheckURL(raw)
	if err != nil {
		return err
	}
	return c.checkTarget(u)
}

// checkTarget refuses a URL whose scheme is not http(s), that has no host,
// or whose host is an IP literal the policy refuses.
func (c *Client) checkTarget(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return &RefusedError{Reason: reasonScheme}
	}
	host := u.Hostname()
	if host == "" {
		return &RefusedError{Reason: reasonHostNeeded}
	}
	if a, ok := literalAddr(host); ok {
		return c.g.policy.Check(a)
	}
	return nil
}

// requestHeader copies h and adds userAgent when h has no User-Agent in any
// spelling.
func requestHeader(h http.Header, userAgent string) http.Header {
	out := h.Clone()
	if out == nil {
		out = make(http.Header)
	}

	// net/http only recognises the canonical key; with a differently
	// spelled one it would add its own default User-Agent as well.
	for k := range out {
		if strings.EqualFold(k, "User-Agent") {
			if k != "User-Agent" {
				// An empty canonical value suppresses net/http's default
				// and is never written; the caller's spelling is.
				out["User-Agent"] = []string{""}
			}
			return out
		}
	}
	if userAgent != "" {
		out["User-Agent"] = []string{userAgent}
	}
	return out
}

// classify maps a Send error to an ErrorKind and a short user message.
func classify(err error, timedOut bool, timeout time.Duration) (ErrorKind, string) {
	var (
		re *RefusedError
		ne net.Error
		de *net.DNSError
		oe *net.OpError
	)
	switch {
	case errors.As(err, &re):
		return KindRefusedByPolicy, re.Error()
	case errors.Is(err, errTooManyRedirects):
		return KindTooManyRedirects, errTooManyRedirects.Error()
	case timedOut, errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout, fmt.Sprintf("no complete answer within %s", timeout)
	case errors.Is(err, context.Canceled):
		return KindOther, "request cancelled"
	case errors.As(err, &de):
		if de.IsNotFound {
			return KindDNS, fmt.Sprintf("host %q not found", de.Name)
		}
		return KindDNS, fmt.Sprintf("could not resolve host %q: %s", de.Name, de.Err)
	case errors.As(err, &oe) && errors.Is(oe.Err, syscall.ECONNREFUSED):
		if oe.Addr != nil {
			return KindConnectionRefused, "connection refused by " + oe.Addr.String()
		}
		return KindConnectionRefused, "connection refused"
	}
	if msg, ok := tlsMessage(err); ok {
		return KindTLS, "TLS handshake failed: " + msg
	}
	return KindOther, otherMessage(err)
}

// tlsMessage returns the TLS or certificate part of err, if there is one.
func tlsMessage(err error) (string, bool) {
	var (
		cve *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		sr  x509.SystemRootsError
		rh  tls.RecordHeaderError
		ae  tls.AlertError
		ech *tls.ECHRejectionError
	)
	switch {
	case errors.As(err, &cve):
		return cve.Err.Error(), true
	case errors.As(err, &ua):
		return ua.Error(), true
	case errors.As(err, &he):
		return he.Error(), true
	case errors.As(err, &ci):
		return ci.Error(), true
	case errors.As(err, &sr):
		return sr.Error(), true
	case errors.As(err, &rh):
		return rh.Error(), true
	case errors.As(err, &ae):
		return ae.Error(), true
	case errors.As(err, &ech):
		return ech.Error(), true
	case errors.Is(err, http.ErrSchemeMismatch):
		return "the server answered plain HTTP to an HTTPS request", true
	}

	// crypto/tls reports local handshake alerts as unexported errors
	// whose text starts with "tls: ".
	msg := otherMessage(err)
	if i := strings.Index(msg, "tls: "); i >= 0 {
		return msg[i:], true
	}
	return "", false
}

// otherMessage strips net/http's `Post "URL":` prefix from err's text; the
// URL is already in the Attempt.
func otherMessage(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err.Error()
	}
	return err.Error()
}
