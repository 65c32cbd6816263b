package feeds

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/patchward/patchward/internal/errs"
)

// Config is the validated content of feeds.yaml. The zero Config, no feeds,
// is the default: an air-gapped clinic imports by hand (`feeds sync --from`)
// until someone configures a source, and nothing reaches out to the
// internet unasked.
type Config struct {
	Feeds []Feed
}

// Feed is one configured feed.
type Feed struct {
	// Name identifies the feed in status, audit and the database.
	Name string
	Kind Kind
	// Exactly one of URL and Path is set. URL is https:// (http:// only to
	// a loopback address, for tests and local mirrors); Path is a file, a
	// directory or an archive (zip, tar, tar.gz, gz).
	URL  string
	Path string
	// Interval is how often `serve` syncs the feed.
	Interval time.Duration
	// Timeout bounds one sync's fetching and parsing.
	Timeout time.Duration
	// MaxBytes caps what one sync downloads or reads, and separately what
	// archives inflate to, against runaway or hostile sources.
	MaxBytes int64
	// AllowShrink lets a new full version hold less than half the records
	// of the current one; without it such a version is refused as a likely
	// truncated download.
	AllowShrink bool
	// Exclude lists glob patterns (path.Match, on the base name) of files
	// inside directories and archives to skip.
	Exclude []string
	// APIKeyEnv names the environment variable holding an NVD API key, so
	// the key itself never sits in the configuration file.
	APIKeyEnv string
	// Line is where the feed is defined in the file, for messages.
	Line int
}

// Source is the feed's URL or path.
func (f Feed) Source() string {
	if f.URL != "" {
		return f.URL
	}
	return f.Path
}

// Defaults and bounds for feed settings.
const (
	DefaultInterval = 24 * time.Hour
	MinInterval     = 5 * time.Minute
	DefaultTimeout  = 30 * time.Minute
	DefaultMaxBytes = 2 << 30
	// MaxConfigBytes caps feeds.yaml itself.
	MaxConfigBytes = 1 << 20
)

var (
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName reports whether s can name a feed: 1-64 lower-case letters,
// digits, '.', '_' or '-', starting with a letter or digit.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// LoadConfig reads and validates the configuration file at path. A missing
// file is an error only when required is true: the default path may be
// absent on a clinic that has configured no feeds.
func LoadConfig(path string, required bool) (Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, errs.Wrap(errs.Invalid, err, "read feed configuration %s: %v", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return Config{}, errs.Wrap(errs.Invalid, err, "read feed configuration %s: %v", path, err)
	}
	if len(data) > MaxConfigBytes {
		return Config{}, errs.E(errs.TooLarge, "feed configuration %s is larger than %d bytes", path, MaxConfigBytes)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, prefixMessage(err, path)
	}
	return cfg, nil
}

// prefixMessage puts the file name in front of a kinded error's message so
// "line 4: …" reads "feeds.yaml:4: …".
func prefixMessage(err error, file string) error {
	var e *errs.Error
	if errors.As(err, &e) {
		c := *e
		c.Message = file + ":" + strings.TrimPrefix(e.Message, "line ")
		return &c
	}
	return err
}

// ParseConfig parses and validates feeds.yaml. Errors name the line:
// unknown keys, wrong types and invalid values are all refused, because a
// silently ignored typo in a security feed's settings is a feed that is
// never synced.
func ParseConfig(data []byte) (Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, errs.Wrap(errs.Invalid, err, "%s", yamlMessage(err))
	}
	var cfg Config
	if len(doc.Content) == 0 {
		return cfg, nil // empty file: no feeds
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return cfg, lineErr(root, "the file must be a mapping with a \"feeds\" list")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		switch k.Value {
		case "feeds":
			if v.Tag == "!!null" {
				continue
			}
			if v.Kind != yaml.SequenceNode {
				return cfg, lineErr(v, "feeds must be a list")
			}
			for _, item := range v.Content {
				f, err := parseFeed(item)
				if err != nil {
					return Config{}, err
				}
				if prev, dup := seen[f.Name]; dup {
					return Config{}, lineErr(item, "feed %q is already defined on line %d", f.Name, prev)
				}
				seen[f.Name] = f.Line
				cfg.Feeds = append(cfg.Feeds, f)
			}
		default:
			return Config{}, lineErr(k, "unknown key %q (expected \"feeds\")", k.Value)
		}
	}
	return cfg, nil
}

// yamlMessage turns a yaml.v3 error into one line that keeps its "line N:".
func yamlMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return strings.TrimPrefix(msg, "unmarshal errors:; ")
}

func lineErr(n *yaml.Node, format string, args ...any) error {
	return errs.E(errs.Invalid, "line %d: %s", n.Line, fmt.Sprintf(format, args...))
}

func parseFeed(n *yaml.Node) (Feed, error) {
	f := Feed{Line: n.Line, Interval: DefaultInterval, Timeout: DefaultTimeout, MaxBytes: DefaultMaxBytes}
	if n.Kind != yaml.MappingNode {
		return f, lineErr(n, "each feed must be a mapping with name, kind and url or path")
	}
	got := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if got[k.Value] {
			return f, lineErr(k, "key %q given twice", k.Value)
		}
		got[k.Value] = true
		if k.Value != "exclude" && v.Kind != yaml.ScalarNode {
			return f, lineErr(v, "%s must be a single value", k.Value)
		}
		var err error
		switch k.Value {
		case "name":
			f.Name = v.Value
			if !nameRE.MatchString(f.Name) {
				return f, lineErr(v, "feed name %q must be 1-64 lower-case letters, digits, '.', '_' or '-'", f.Name)
			}
		case "kind":
			f.Kind = Kind(v.Value)
			if !f.Kind.Valid() {
				return f, lineErr(v, "unknown kind %q (one of %s)", v.Value, kindList())
			}
		case "url":
			f.URL = v.Value
			if err := CheckURL(f.URL); err != nil {
				return f, lineErr(v, "%s", errs.Public(err))
			}
		case "path":
			f.Path = v.Value
			if f.Path == "" {
				return f, lineErr(v, "path is empty")
			}
		case "interval":
			if f.Interval, err = ParseDuration(v.Value); err != nil {
				return f, lineErr(v, "interval: %v", err)
			}
			if f.Interval < MinInterval {
				return f, lineErr(v, "interval %s is shorter than the minimum %s", v.Value, MinInterval)
			}
		case "timeout":
			if f.Timeout, err = ParseDuration(v.Value); err != nil {
				return f, lineErr(v, "timeout: %v", err)
			}
			if f.Timeout < time.Second {
				return f, lineErr(v, "timeout %s is shorter than one second", v.Value)
			}
		case "max_size":
			if f.MaxBytes, err = ParseSize(v.Value); err != nil {
				return f, lineErr(v, "max_size: %v", err)
			}
		case "allow_shrink":
			if f.AllowShrink, err = strconv.ParseBool(v.Value); err != nil {
				return f, lineErr(v, "allow_shrink must be true or false, not %q", v.Value)
			}
		case "api_key_env":
			f.APIKeyEnv = v.Value
			if !envVarRE.MatchString(f.APIKeyEnv) {
				return f, lineErr(v, "api_key_env must name an environment variable, not hold the key")
			}
		case "exclude":
			if v.Kind != yaml.SequenceNode {
				return f, lineErr(v, "exclude must be a list of file name patterns")
			}
			for _, p := range v.Content {
				if p.Kind != yaml.ScalarNode {
					return f, lineErr(p, "exclude entries must be file name patterns")
				}
				if _, err := path.Match(p.Value, ""); err != nil {
					return f, lineErr(p, "bad exclude pattern %q: %v", p.Value, err)
				}
				f.Exclude = append(f.Exclude, p.Value)
			}
		default:
			return f, lineErr(k, "unknown key %q (expected name, kind, url, path, interval, timeout, max_size, allow_shrink, exclude, api_key_env)", k.Value)
		}
	}
	switch {
	case f.Name == "":
		return f, lineErr(n, "feed needs a name")
	case f.Kind == "":
		return f, lineErr(n, "feed %q needs a kind (one of %s)", f.Name, kindList())
	case f.URL == "" && f.Path == "":
		return f, lineErr(n, "feed %q needs a url or a path", f.Name)
	case f.URL != "" && f.Path != "":
		return f, lineErr(n, "feed %q has both a url and a path; give one", f.Name)
	case f.APIKeyEnv != "" && f.Kind != NVD:
		return f, lineErr(n, "feed %q: api_key_env applies to nvd feeds only", f.Name)
	}
	return f, nil
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// CheckURL accepts https:// URLs, and http:// only to a loopback address:
// feeds decide what a clinic believes about its exposure, so they are never
// fetched in the clear over a network.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errs.E(errs.Invalid, "url %q is not an absolute URL", raw)
	}
	if u.User != nil {
		return errs.E(errs.Invalid, "url must not carry credentials")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return errs.E(errs.Invalid, "url %q must use https:// (plain http is allowed only to a loopback address)", raw)
	}
	return errs.E(errs.Invalid, "url %q must use https://", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ParseDuration is time.ParseDuration plus a "d" suffix for whole days,
// which is how feed schedules are usually written.
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > 365 {
			return 0, fmt.Errorf("%q is not a whole number of days between 1 and 365", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 30m, 6h or 1d", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q must be positive", s)
	}
	return d, nil
}

// ParseSize reads a byte count such as 512MiB, 2GB or 1048576.
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size like 512MiB or 2GB (at most 1TiB)", s)
	}
	return n * mult, nil
}
