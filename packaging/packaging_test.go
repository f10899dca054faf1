// Package packaging_test checks the files packaging/ ships that can be
// checked without building a package: the default config and the Debian
// version scheme. check-deb.sh checks the built packages.
package packaging_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/simgate/simgate/config"
)

// The packaged /etc/simgate/simgate.yaml must be the defaults, spelled out:
// a user reading it sees exactly what simgate does when a key is left out.
func TestDefaultConfigIsTheDefault(t *testing.T) {
	data, err := os.ReadFile("simgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.Parse("simgate.yaml", data, nil)
	if err != nil {
		t.Fatalf("config.Parse rejects the packaged config: %v", err)
	}
	if diff := cmp.Diff(config.Default(), got); diff != "" {
		t.Errorf("packaged config differs from config.Default() (-want +got):\n%s", diff)
	}
}

// Every key of the configuration appears in the packaged file, so it
// documents all of them.
func TestDefaultConfigHasEveryKey(t *testing.T) {
	data, err := os.ReadFile("simgate.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all, err := yaml.Marshal(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	want, got := yamlKeys(t, all), yamlKeys(t, data)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}

// yamlKeys returns the dotted paths of every mapping key in a document.
func yamlKeys(t *testing.T, data []byte) []string {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, prefix)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := prefix + n.Content[i].Value
				keys = append(keys, k)
				walk(n.Content[i+1], k+".")
			}
		}
	}
	walk(&doc, "")
	sort.Strings(keys)
	return keys
}

func debVersion(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"deb-version.sh"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", errors.Join(err, errors.New(strings.TrimSpace(stderr.String())))
	}
	return strings.TrimSuffix(string(out), "\n"), nil
}

func TestDebVersion(t *testing.T) {
	tests := []struct {
		describe, want string
	}{
		{"v1.2.3", "1.2.3"},
		{"1.2.3", "1.2.3"},
		{"v1.2", "1.2"},
		{"v1.2.3-rc1", "1.2.3~rc1"},
		{"v1.2.3-4-gabc1234", "1.2.3+4.gabc1234"},
		{"v1.2.3-rc1-4-gabc1234", "1.2.3~rc1+4.gabc1234"},
		{"v1.2.3-dirty", "1.2.3+0.dirty"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+4.gabc1234.dirty"},
		{"41bc57f", "0.0.0~git20250102.41bc57f"},
		{"41bc57f-dirty", "0.0.0~git20250102.41bc57f.dirty"},
		{"1234567", "0.0.0~git20250102.1234567"}, // a commit id made of digits is not a tag
		{"dev", "0.0.0~git20250102.dev"},
		{"v1.2.3_beta/x", "1.2.3.beta.x"},
	}
	for _, tt := range tests {
		got, err := debVersion(t, tt.describe, "20250102")
		if err != nil {
			t.Errorf("deb-version.sh %q: %v", tt.describe, err)
			continue
		}
		if got != tt.want {
			t.Errorf("deb-version.sh %q = %q, want %q", tt.describe, got, tt.want)
		}
	}
}

func TestDebVersionBadArguments(t *testing.T) {
	for _, args := range [][]string{{}, {""}, {"v1.0", "2025-01-02"}, {"v1.0", "20250102", "extra"}} {
		if got, err := debVersion(t, args...); err == nil {
			t.Errorf("deb-version.sh %q = %q, want an error", args, got)
		}
	}
}

// The versions sort as the releases they come from, and dpkg accepts them.
func TestDebVersionOrder(t *testing.T) {
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("dpkg not installed")
	}
	ascending := []string{
		"41bc57f", // before any tag
		"41bc57f-dirty",
		"v0.1.0-rc1",            // a pre-release
		"v0.1.0-rc1-2-gabc1234", // commits after it
		"v0.1.0",
		"v0.1.0-dirty",
		"v0.1.0-1-gdef5678",
		"v0.1.0-3-gdef5678",
		"v0.1.0-3-gdef5678-dirty",
		"v0.1.0-12-g0123456", // more commits sort later, numerically
		"v0.1.1",
		"v1.0.0",
	}
	var versions []string
	for _, d := range ascending {
		v, err := debVersion(t, d, "20250102")
		if err != nil {
			t.Fatalf("deb-version.sh %q: %v", d, err)
		}
		if out, err := exec.Command("dpkg", "--validate-version", v).CombinedOutput(); err != nil {
			t.Errorf("dpkg rejects %q (from %q): %s", v, d, out)
		}
		versions = append(versions, v)
	}
	for i := 1; i < len(versions); i++ {
		a, b := versions[i-1], versions[i]
		if err := exec.Command("dpkg", "--compare-versions", a, "lt", b).Run(); err != nil {
			t.Errorf("dpkg does not sort %q (%s) before %q (%s)", a, ascending[i-1], b, ascending[i])
		}
	}
}

// The shell scripts that build and check the packages parse, and pass
// shellcheck where it is installed: check-deb.sh and check-service.sh run as
// root and only in CI or by hand, so a typo would otherwise surface late.
func TestScripts(t *testing.T) {
	scripts, err := filepath.Glob("*.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"build-deb.sh", "check-deb.sh", "check-lib.sh", "check-service.sh", "deb-version.sh", "test-root.sh"}
	if diff := cmp.Diff(want, scripts); diff != "" {
		t.Errorf("scripts (-want +got):\n%s", diff)
	}
	for _, s := range scripts {
		if out, err := exec.Command("bash", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck not installed")
	}
	// From the repository root, where the scripts' "shellcheck source="
	// paths start.
	args := []string{"-x"}
	for _, s := range scripts {
		args = append(args, filepath.Join("packaging", s))
	}
	cmd := exec.Command("shellcheck", args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
