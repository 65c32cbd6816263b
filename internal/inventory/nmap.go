package inventory

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/patchward/patchward/internal/audit"
	"github.com/patchward/patchward/internal/errs"
)

// MaxNmapBytes bounds an nmap XML upload; a /16 sweep with service
// detection is a few megabytes.
const MaxNmapBytes = 32 << 20

// DiscoveredHost is one live host from a network discovery scan.
type DiscoveredHost struct {
	IPs       []string
	MAC       string
	MACVendor string
	Hostnames []string
	// OS is nmap's best OS guess and its CPE, when it made one.
	OS    string
	OSCPE string
	// OpenPorts lists "port/proto service product version".
	OpenPorts []string
}

type nmapRun struct {
	XMLName xml.Name   `xml:"nmaprun"`
	Scanner string     `xml:"scanner,attr"`
	Hosts   []nmapHost `xml:"host"`
}

type nmapHost struct {
	Status struct {
		State string `xml:"state,attr"`
	} `xml:"status"`
	Addresses []struct {
		Addr     string `xml:"addr,attr"`
		AddrType string `xml:"addrtype,attr"`
		Vendor   string `xml:"vendor,attr"`
	} `xml:"address"`
	Hostnames []struct {
		Name string `xml:"name,attr"`
	} `xml:"hostnames>hostname"`
	Ports []struct {
		Protocol string `xml:"protocol,attr"`
		PortID   string `xml:"portid,attr"`
		State    struct {
			State string `xml:"state,attr"`
		} `xml:"state"`
		Service struct {
			Name    string `xml:"name,attr"`
			Product string `xml:"product,attr"`
			Version string `xml:"version,attr"`
		} `xml:"service"`
	} `xml:"ports>port"`
	OSMatches []struct {
		Name     string `xml:"name,attr"`
		Accuracy string `xml:"accuracy,attr"`
		Classes  []struct {
			CPE []string `xml:"cpe"`
		} `xml:"osclass"`
	} `xml:"os>osmatch"`
}

// ParseNmapXML reads nmap's -oX output and returns the hosts that were up.
// It is strict about the document (an nmaprun root from the nmap scanner)
// and about addresses, because the result lands in the inventory.
func ParseNmapXML(r io.Reader) ([]DiscoveredHost, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxNmapBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read nmap XML: %w", err)
	}
	if len(data) > MaxNmapBytes {
		return nil, errs.E(errs.TooLarge, "nmap XML is larger than %d bytes", MaxNmapBytes)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	// nmap's DOCTYPE has no internal subset; refuse entities rather than
	// expand them.
	dec.Strict = true
	dec.Entity = map[string]string{}
	var run nmapRun
	if err := dec.Decode(&run); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return nil, errs.E(errs.Invalid, "malformed nmap XML at line %d: %s", se.Line, se.Msg)
		}
		return nil, errs.E(errs.Invalid, "not nmap XML output (expected an <nmaprun> document from `nmap -oX`)")
	}
	if run.Scanner != "nmap" {
		return nil, errs.E(errs.Invalid, "not nmap XML output: scanner is %q", run.Scanner)
	}
	var out []DiscoveredHost
	for i, h := range run.Hosts {
		if h.Status.State != "up" {
			continue
		}
		var d DiscoveredHost
		for _, a := range h.Addresses {
			switch a.AddrType {
			case "ipv4", "ipv6":
				ip, err := netip.ParseAddr(a.Addr)
				if err != nil {
					return nil, errs.E(errs.Invalid, "host %d: %q is not an IP address", i+1, a.Addr)
				}
				d.IPs = append(d.IPs, ip.String())
			case "mac":
				d.MAC, d.MACVendor = strings.ToLower(a.Addr), strings.TrimSpace(a.Vendor)
			}
		}
		if len(d.IPs) == 0 && d.MAC == "" {
			return nil, errs.E(errs.Invalid, "host %d has no address", i+1)
		}
		for _, hn := range h.Hostnames {
			if n := strings.TrimSpace(hn.Name); n != "" && !slices.Contains(d.Hostnames, n) {
				d.Hostnames = append(d.Hostnames, n)
			}
		}
		best := -1
		for j, m := range h.OSMatches {
			acc, _ := strconv.Atoi(m.Accuracy)
			if best < 0 || acc > mustAtoi(h.OSMatches[best].Accuracy) {
				best = j
			}
		}
		if best >= 0 {
			m := h.OSMatches[best]
			d.OS = m.Name
			for _, c := range m.Classes {
				if len(c.CPE) > 0 && d.OSCPE == "" {
					d.OSCPE = c.CPE[0]
				}
			}
		}
		for _, p := range h.Ports {
			if p.State.State != "open" {
				continue
			}
			desc := strings.Join(strings.Fields(strings.Join([]string{p.Service.Name, p.Service.Product, p.Service.Version}, " ")), " ")
			d.OpenPorts = append(d.OpenPorts, strings.TrimSpace(p.PortID+"/"+p.Protocol+" "+desc))
		}
		out = append(out, d)
	}
	return out, nil
}

func mustAtoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// ImportNmap records the hosts of an nmap scan as seen on the network,
// through the discovery import: known devices get a last-seen time, unknown
// ones appear as unmanaged devices for reconciliation. Hosts are matched by
// MAC address, then host name; a host with neither (a scan across a router)
// is matched by its IP address standing in as its host name.
func (s *Service) ImportNmap(ctx context.Context, actor audit.Actor, r io.Reader, name string, dryRun bool) (ImportReport, error) {
	hosts, err := ParseNmapXML(r)
	if err != nil {
		return ImportReport{}, fmt.Errorf("import nmap scan: %w", err)
	}
	if len(hosts) == 0 {
		return ImportReport{}, errs.E(errs.Invalid, "the nmap scan has no host that was up")
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"name", "hostname", "ip_addresses", "mac_address", "make", "notes"})
	for _, h := range hosts {
		hostname := ""
		if len(h.Hostnames) > 0 {
			hostname = h.Hostnames[0]
		} else if h.MAC == "" && len(h.IPs) > 0 {
			hostname = h.IPs[0]
		}
		display := hostname
		if display == "" {
			display = "Unknown device " + strings.Join(h.IPs, ", ")
		}
		var notes []string
		if h.OS != "" {
			notes = append(notes, "nmap OS guess: "+h.OS)
		}
		if len(h.OpenPorts) > 0 {
			notes = append(notes, "open ports: "+strings.Join(h.OpenPorts, "; "))
		}
		note := strings.Join(notes, ". ")
		if len(note) > 3900 {
			note = note[:3900] + "…"
		}
		_ = w.Write([]string{display, hostname, strings.Join(h.IPs, ";"), h.MAC, h.MACVendor, note})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return ImportReport{}, fmt.Errorf("import nmap scan: %w", err)
	}
	return s.ImportCSV(ctx, actor, &buf, ImportOptions{Kind: ImportDiscovery, Name: name, DryRun: dryRun,
		Match: []string{MatchMAC, MatchHostname}})
}
