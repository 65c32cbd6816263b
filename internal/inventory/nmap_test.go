package inventory

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/patchward/patchward/internal/errs"
)

func TestParseNmapXML(t *testing.T) {
	f, err := os.Open("testdata/nmap-7.93-loopback-sV-O.xml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	hosts, err := ParseNmapXML(f)
	if err != nil {
		t.Fatalf("ParseNmapXML: %v", err)
	}
	if len(hosts) != 1 {
		t.Fatalf("hosts = %d; want 1", len(hosts))
	}
	h := hosts[0]
	want := DiscoveredHost{IPs: []string{"127.0.0.1"}, Hostnames: []string{"localhost"}, OS: "Linux 5.0 - 5.2",
		OSCPE: "cpe:/o:linux:linux_kernel:5", OpenPorts: []string{"18080/tcp http SimpleHTTPServer 0.6", "18443/tcp http OpenSSL s_server -www httpd"}}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("host (-want +got):\n%s", diff)
	}
}

func TestParseNmapXMLRejects(t *testing.T) {
	for _, tc := range []struct{ name, in, msg string }{
		{"not xml", "hello", "not nmap XML"},
		{"other root", `<?xml version="1.0"?><html></html>`, "not nmap XML"},
		{"other scanner", `<nmaprun scanner="masscan"></nmaprun>`, "scanner is"},
		{"truncated", `<nmaprun scanner="nmap"><host><status state="up"/>`, "malformed nmap XML"},
		{"bad ip", `<nmaprun scanner="nmap"><host><status state="up"/><address addr="10.0.0.999" addrtype="ipv4"/></host></nmaprun>`, "not an IP address"},
		{"entity", `<!DOCTYPE x [<!ENTITY a "b">]><nmaprun scanner="nmap">&a;</nmaprun>`, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseNmapXML(strings.NewReader(tc.in))
			if !errors.Is(err, errs.ErrInvalid) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ParseNmapXML(%q) = %v; want Invalid containing %q", tc.name, err, tc.msg)
			}
		})
	}
}

func FuzzParseNmapXML(f *testing.F) {
	for _, name := range []string{"testdata/nmap-7.93-loopback-sV-O.xml", "testdata/nmap-7.93-loopback-ping.xml"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<nmaprun scanner="nmap"><host><status state="up"/><address addr="aa:bb" addrtype="mac"/></host></nmaprun>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		hosts, err := ParseNmapXML(strings.NewReader(string(b)))
		if err != nil {
			if k := errs.KindOf(err); k != errs.Invalid && k != errs.TooLarge {
				t.Fatalf("error kind %v for %q: %v", k, b, err)
			}
			if hosts != nil {
				t.Fatal("hosts returned with an error")
			}
			return
		}
		for _, h := range hosts {
			if len(h.IPs) == 0 && h.MAC == "" {
				t.Fatalf("host without address accepted: %+v", h)
			}
		}
	})
}
