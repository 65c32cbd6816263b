package feeds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/patchward/patchward/internal/errs"
)

// Fetcher downloads and reads feed sources. The zero value is ready to use.
type Fetcher struct {
	// Client is the HTTP client; nil means one with sane timeouts, the
	// environment's proxy, and redirects only to https (or loopback).
	Client *http.Client
	// UserAgent identifies Patchward to feed publishers.
	UserAgent string
	// Attempts is how many times a request is tried on network errors, 429
	// and 5xx responses (default 4).
	Attempts int
	// Backoff is the first retry delay, doubled for each further attempt
	// (default 2s); a Retry-After header up to a minute is honoured instead.
	Backoff time.Duration
	// NVDPageDelay spaces NVD API requests to stay within its rate limits:
	// default 6s without an API key (5 requests per 30s), 1s with one.
	// Negative means no delay.
	NVDPageDelay time.Duration
	// Getenv reads the NVD API key's variable; os.Getenv if nil.
	Getenv func(string) string

	once sync.Once
	def  *http.Client
}

// FetchError is a failed download. Its text names the URL and the status or
// network error, which is safe and useful to show an operator.
type FetchError struct {
	URL    string
	Status int
	Err    error
}

func (e *FetchError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("GET %s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
	}
	return fmt.Sprintf("GET %s: %v", e.URL, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// fetched describes what a fetch found.
type fetched struct {
	// notModified is true when the source is unchanged since the current
	// version (HTTP 304, or the same content hash).
	notModified  bool
	etag         string
	lastModified string
	sha256       string
	// cursor and incremental describe an NVD modified-since fetch.
	cursor      string
	incremental bool
}

// visitFunc receives each fetched unit; top is true for a unit named
// directly by the feed (a URL, a file path) rather than found in a directory.
type visitFunc func(name string, data []byte, top bool) error

// fetch reads feed f, skipping the work when the source says or shows it is
// unchanged since prev, and hands every unit to visit.
func (fe *Fetcher) fetch(ctx context.Context, f Feed, prev Status, want func(string) bool, visit visitFunc) (fetched, error) {
	switch {
	case f.Path != "":
		return fe.fetchPath(ctx, f, prev, want, visit)
	case f.Kind == NVD:
		return fe.fetchNVD(ctx, f, prev, visit)
	default:
		return fe.fetchURL(ctx, f, prev, visit)
	}
}

func (fe *Fetcher) fetchURL(ctx context.Context, f Feed, prev Status, visit visitFunc) (fetched, error) {
	h := http.Header{}
	if prev.VersionID != 0 {
		if prev.ETag != "" {
			h.Set("If-None-Match", prev.ETag)
		}
		if prev.LastModified != "" {
			h.Set("If-Modified-Since", prev.LastModified)
		}
	}
	resp, err := fe.get(ctx, f.URL, h, f.MaxBytes)
	if err != nil {
		return fetched{}, err
	}
	out := fetched{etag: resp.etag, lastModified: resp.lastModified}
	if resp.status == http.StatusNotModified {
		out.notModified = true
		out.etag, out.lastModified = prev.ETag, prev.LastModified
		if resp.etag != "" {
			out.etag = resp.etag
		}
		return out, nil
	}
	sum := sha256.Sum256(resp.body)
	out.sha256 = hex.EncodeToString(sum[:])
	if out.sha256 == prev.SHA256 {
		out.notModified = true
		return out, nil
	}
	name := "download"
	if u, err := url.Parse(f.URL); err == nil && path.Base(u.Path) != "/" && path.Base(u.Path) != "." {
		name = path.Base(u.Path)
	}
	return out, visit(name, resp.body, true)
}

type response struct {
	status       int
	body         []byte
	etag         string
	lastModified string
}

// get performs one GET with retries, reading at most max bytes.
func (fe *Fetcher) get(ctx context.Context, rawURL string, h http.Header, max int64) (response, error) {
	attempts := fe.Attempts
	if attempts <= 0 {
		attempts = 4
	}
	backoff := fe.Backoff
	if backoff <= 0 {
		backoff = 2 * time.Second
	}
	var lastErr error
	for i := range attempts {
		if i > 0 {
			wait := backoff << (i - 1)
			if ra := retryAfter(lastErr); ra > 0 {
				wait = ra
			}
			if err := sleep(ctx, wait); err != nil {
				return response{}, lastErr
			}
		}
		resp, err := fe.getOnce(ctx, rawURL, h, max)
		if err == nil {
			return resp, nil
		}
		lastErr = err
		if !retryable(err) || ctx.Err() != nil {
			break
		}
	}
	return response{}, lastErr
}

// retryAfterError carries a server's Retry-After alongside the status.
type retryAfterError struct{ after time.Duration }

func (e retryAfterError) Error() string { return "retry after " + e.after.String() }

func retryAfter(err error) time.Duration {
	var ra retryAfterError
	if errors.As(err, &ra) {
		return ra.after
	}
	return 0
}

func retryable(err error) bool {
	var fe *FetchError
	if !errors.As(err, &fe) {
		return false // size caps and the like: trying again changes nothing
	}
	var re redirectError
	if fe.Status == 0 {
		return !errors.As(err, &re) // network errors are worth another try
	}
	return fe.Status == http.StatusTooManyRequests || fe.Status >= 500
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (fe *Fetcher) client() *http.Client {
	if fe.Client != nil {
		return fe.Client
	}
	fe.once.Do(func() { fe.def = DefaultClient() })
	return fe.def
}

// DefaultClient is the HTTP client feeds use unless told otherwise: the
// environment's proxy (clinics often have one), bounded connect and header
// waits, and redirects followed only to https or loopback so a hijacked
// redirect cannot downgrade the transport.
func DefaultClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// redirectError is a refused redirect: retrying would be refused again.
type redirectError struct{ msg string }

func (e redirectError) Error() string { return e.msg }

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return redirectError{"stopped after 5 redirects"}
	}
	if req.URL.Scheme != "https" && !(req.URL.Scheme == "http" && isLoopback(req.URL.Hostname())) {
		return redirectError{fmt.Sprintf("refusing redirect to %s: feeds are fetched over https only", redact(req.URL.String()))}
	}
	return nil
}

func (fe *Fetcher) getOnce(ctx context.Context, rawURL string, h http.Header, max int64) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return response{}, errs.Wrap(errs.Invalid, err, "bad feed URL %q", rawURL)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	ua := fe.UserAgent
	if ua == "" {
		ua = "patchward-feeds"
	}
	req.Header.Set("User-Agent", ua)
	resp, err := fe.client().Do(req)
	if err != nil {
		return response{}, &FetchError{URL: redact(rawURL), Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	out := response{status: resp.StatusCode, etag: resp.Header.Get("ETag"), lastModified: resp.Header.Get("Last-Modified")}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return out, nil
	case resp.StatusCode != http.StatusOK:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		e := &FetchError{URL: redact(rawURL), Status: resp.StatusCode}
		if s := resp.Header.Get("Retry-After"); s != "" {
			if n, err := strconv.Atoi(s); err == nil && n > 0 && n <= 60 {
				e.Err = retryAfterError{after: time.Duration(n) * time.Second}
			}
		}
		return out, e
	case resp.ContentLength > max:
		return out, errs.E(errs.TooLarge, "GET %s: %d bytes is more than the feed's max_size of %d", redact(rawURL), resp.ContentLength, max)
	}
	out.body, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		// A connection cut mid-body surfaces here (unexpected EOF against
		// Content-Length): the download is incomplete and must not be used.
		return out, &FetchError{URL: redact(rawURL), Err: fmt.Errorf("download interrupted: %w", err)}
	}
	if int64(len(out.body)) > max {
		return out, errs.E(errs.TooLarge, "GET %s: more than the feed's max_size of %d bytes", redact(rawURL), max)
	}
	return out, nil
}

// unwrapURLError drops *url.Error's repetition of method and URL, which
// FetchError already names.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact keeps query parameters out of messages: an NVD API key could be
// passed that way by someone who did not read the docs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable URL)"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}

// fetchPath reads a local file, directory or archive. Change is detected by
// content hash: modification times survive copies badly (and are kept by
// `cp -p` across different content), so they are only recorded.
func (fe *Fetcher) fetchPath(ctx context.Context, f Feed, prev Status, want func(string) bool, visit visitFunc) (fetched, error) {
	info, err := os.Stat(f.Path)
	if err != nil {
		return fetched{}, errs.Wrap(errs.Invalid, err, "feed path %s: %v", f.Path, errors.Unwrap(err))
	}
	type file struct {
		rel, abs string
		top      bool
	}
	var files []file
	if info.IsDir() {
		err = filepath.WalkDir(f.Path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(f.Path, p)
			if d.IsDir() {
				if p != f.Path && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if (d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0) && want(filepath.ToSlash(rel)) {
				files = append(files, file{rel: filepath.ToSlash(rel), abs: p})
			}
			return nil
		})
		if err != nil {
			return fetched{}, errs.Wrap(errs.Invalid, err, "read feed directory %s: %v", f.Path, err)
		}
		if len(files) == 0 {
			return fetched{}, errs.E(errs.Invalid, "feed directory %s holds no %s files", f.Path, f.Kind)
		}
	} else {
		files = []file{{rel: filepath.Base(f.Path), abs: f.Path, top: true}}
	}

	// First pass: hash, so an unchanged source costs a read, not a parse.
	var (
		total  int64
		newest time.Time
		h      = sha256.New()
	)
	read := func(fl file) ([]byte, error) {
		fh, err := os.Open(fl.abs)
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "read %s: %v", fl.abs, errors.Unwrap(err))
		}
		defer fh.Close()
		st, err := fh.Stat()
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "read %s: %v", fl.abs, err)
		}
		if st.ModTime().After(newest) {
			newest = st.ModTime()
		}
		b, err := io.ReadAll(io.LimitReader(fh, f.MaxBytes-total+1))
		if err != nil {
			return nil, errs.Wrap(errs.Invalid, err, "read %s: %v", fl.abs, err)
		}
		total += int64(len(b))
		if total > f.MaxBytes {
			return nil, errs.E(errs.TooLarge, "feed %s is larger than its max_size of %d bytes", f.Path, f.MaxBytes)
		}
		return b, nil
	}
	for _, fl := range files {
		if err := ctx.Err(); err != nil {
			return fetched{}, err
		}
		b, err := read(fl)
		if err != nil {
			return fetched{}, err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%x\n", fl.rel, sum)
	}
	out := fetched{sha256: hex.EncodeToString(h.Sum(nil)), lastModified: newest.UTC().Format(http.TimeFormat)}
	if out.sha256 == prev.SHA256 {
		out.notModified = true
		return out, nil
	}
	total = 0
	for _, fl := range files {
		if err := ctx.Err(); err != nil {
			return fetched{}, err
		}
		b, err := read(fl)
		if err != nil {
			return fetched{}, err
		}
		if err := visit(fl.rel, b, fl.top); err != nil {
			return fetched{}, err
		}
	}
	return out, nil
}

// NVD API 2.0 limits.
const (
	nvdPageSize = 2000
	// nvdMaxWindow is the widest lastModStartDate..lastModEndDate range the
	// API accepts.
	nvdMaxWindow = 120 * 24 * time.Hour
	nvdTimeFmt   = "2006-01-02T15:04:05.000-07:00"
)

// fetchNVD pages through the NVD CVE API 2.0. With a current version whose
// cursor is within the API's 120-day window, it asks only for CVEs modified
// since (lastModStartDate = the previous query's lastModEndDate), and the
// sync builds the new version from the previous one plus those; otherwise it
// downloads the full result set. Query parameters already in the URL (a
// keywordSearch or cpeName filter, say) are kept.
func (fe *Fetcher) fetchNVD(ctx context.Context, f Feed, prev Status, visit visitFunc) (fetched, error) {
	base, err := url.Parse(f.URL)
	if err != nil {
		return fetched{}, errs.Wrap(errs.Invalid, err, "bad NVD URL")
	}
	getenv := fe.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	h := http.Header{}
	delay := 6 * time.Second
	if f.APIKeyEnv != "" {
		if key := getenv(f.APIKeyEnv); key != "" {
			h.Set("apiKey", key)
			delay = time.Second
		}
	}
	if fe.NVDPageDelay != 0 {
		delay = max(fe.NVDPageDelay, 0)
	}
	end := time.Now().UTC()
	out := fetched{cursor: end.Format(nvdTimeFmt)}
	q := base.Query()
	if prev.VersionID != 0 && prev.Cursor != "" {
		if start, err := time.Parse(nvdTimeFmt, prev.Cursor); err == nil && end.Sub(start) < nvdMaxWindow && !start.After(end) {
			q.Set("lastModStartDate", start.Format(nvdTimeFmt))
			q.Set("lastModEndDate", end.Format(nvdTimeFmt))
			out.incremental = true
		}
	}
	q.Set("resultsPerPage", strconv.Itoa(nvdPageSize))
	sum := sha256.New()
	var read int64
	for start, page := 0, 1; ; page++ {
		if page > 1 && delay > 0 {
			if err := sleep(ctx, delay); err != nil {
				return fetched{}, err
			}
		}
		q.Set("startIndex", strconv.Itoa(start))
		u := *base
		u.RawQuery = q.Encode()
		resp, err := fe.get(ctx, u.String(), h, f.MaxBytes-read)
		if err != nil {
			return fetched{}, err
		}
		read += int64(len(resp.body))
		var head struct {
			ResultsPerPage *int `json:"resultsPerPage"`
			StartIndex     *int `json:"startIndex"`
			TotalResults   *int `json:"totalResults"`
		}
		if err := json.Unmarshal(resp.body, &head); err != nil || head.ResultsPerPage == nil || head.TotalResults == nil {
			return fetched{}, errs.E(errs.Invalid, "NVD page %d is not an NVD API 2.0 response (truncated?)", page)
		}
		sum.Write(resp.body)
		if *head.TotalResults == 0 && out.incremental {
			out.notModified = true
			return out, nil
		}
		if err := visit(fmt.Sprintf("nvd-page-%04d.json", page), resp.body, true); err != nil {
			return fetched{}, err
		}
		start += *head.ResultsPerPage
		if *head.ResultsPerPage <= 0 || start >= *head.TotalResults {
			break
		}
	}
	out.sha256 = hex.EncodeToString(sum.Sum(nil))
	return out, nil
}
