// Command xcaddyargs turns xcaddy.json (xcaddy.Builder's JSON shape) into
// xcaddy command-line arguments, so `make xcaddy` builds from the recipe
// without a JSON tool on the machine.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type recipe struct {
	CaddyVersion string `json:"caddy_version"`
	Plugins      []struct {
		ModulePath string `json:"module_path"`
		Version    string `json:"version"`
		Replace    string `json:"replace"`
	} `json:"plugins"`
}

func main() {
	path := "xcaddy.json"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xcaddyargs:", err)
		os.Exit(1)
	}
	var r recipe
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(os.Stderr, "xcaddyargs: %s: %v\n", path, err)
		os.Exit(1)
	}
	if r.CaddyVersion == "" {
		fmt.Fprintf(os.Stderr, "xcaddyargs: %s: caddy_version is required\n", path)
		os.Exit(1)
	}
	args := []string{r.CaddyVersion}
	for _, p := range r.Plugins {
		w := p.ModulePath
		if p.Version != "" {
			w += "@" + p.Version
		}
		if p.Replace != "" {
			w += "=" + p.Replace
		}
		args = append(args, "--with", w)
	}
	fmt.Println(strings.Join(args, " "))
}
