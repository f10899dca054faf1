package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time: -ldflags "-X main.version=v1.2.3 -X main.commit=abc1234".
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit stamped at link time, else
// what the Go toolchain recorded in the binary.
func buildVersion() (v, c string) {
	info, _ := debug.ReadBuildInfo()
	return versionFrom(version, commit, info)
}

// versionFrom picks the version and commit: the link-time stamp first;
// then the module's build info, whose Main.Version is the module version
// (go install ...@v1.2.3) or, for go build in a checkout, the pseudo-version
// Go derives from the commit; then the commit alone ("devel-<commit>", with
// "-dirty" for uncommitted changes). go run records none of these unless
// given -buildvcs=true, so its builds are "devel".
func versionFrom(ldVersion, ldCommit string, info *debug.BuildInfo) (v, c string) {
	v, c = ldVersion, ldCommit
	var rev string
	modified := false
	if info != nil {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if c == "" {
		c = rev
	}
	if v == "" {
		v = "devel"
		if rev != "" {
			v += "-" + rev
			if modified {
				v += "-dirty"
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

func versionString() string {
	v, c := buildVersion()
	return fmt.Sprintf("simgate %s (commit %s) %s %s/%s", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
