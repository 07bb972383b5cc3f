package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// The saymon document's Python and Node examples, verbatim. The test
// fills in the <...> placeholders and swaps the example's CAPTCHA token and
// solution for fresh ones; nothing else is changed.
const pythonSnippet = `import requests

login = <...>
password = <...>
saymon_hostname = <...>
url = "https://" + saymon_hostname + "/node/api/users/signup"

body = {
    "token": "5c2ef019-cca8-40de-b306-050dd976c743",
    "captcha": "1qTY",
    "login": "user_login",
    "email": "user_email@example.com",
    "password": "1111"
}

response = requests.request("POST", url, json=body, auth=(login, password))
print(response.text)
`

const nodeSnippet = `const http = require("http");

let login = <...>
let password = <...>
let saymonHostname = <...>
let path = "/node/api/users/signup";
let auth = "Basic " + Buffer.from(login + ":" + password).toString("base64");

let options = {
    "method": "POST",
    "hostname": saymonHostname,
    "headers": {
        "Authorization": auth,
        "Content-Type": "application/json"
    },
    "path": path
};

let req = http.request(options, function (res) {
    let chunks = [];

    res.on("data", function (chunk) {
        chunks.push(chunk);
    });

    res.on("end", function (chunk) {
        let body = Buffer.concat(chunks);
        console.log(body.toString());
    });

    res.on("error", function (error) {
        console.error(error);
    });
});

let data = JSON.stringify({
    "token": "5c2ef019-cca8-40de-b306-050dd976c743",
    "captcha": "1qTY",
    "login": "user_login",
    "email": "user_email@example.com",
    "password": "1111"
});

req.write(data);
req.end();
`

// pythonWithRequests finds a Python that has the requests package.
func pythonWithRequests(t *testing.T) string {
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import requests").Run() == nil {
			return p
		}
	}
	t.Fatal("no python3 with requests (make test installs python3-requests)")
	return ""
}

func fill(snippet string, values ...string) string {
	// Placeholders in order: login, password, hostname.
	for _, v := range values {
		snippet = strings.Replace(snippet, "<...>", v, 1)
	}
	return snippet
}

// TestSaymonDocumentSnippets runs the document's Python (requests, over
// HTTPS as written) and Node (http, plain HTTP on port 80 as written)
// examples against a real Caddy and expects the documented User model.
func TestSaymonDocumentSnippets(t *testing.T) {
	py := pythonWithRequests(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found")
	}
	// The Node example names no port, so it needs port 80.
	l, err := net.Listen("tcp", "127.0.0.1:80")
	if err != nil {
		t.Fatalf("port 80 is needed for the Node example, which names no port (run as root, with port 80 free): %v", err)
	}
	l.Close()

	sink := startSMTP(t)
	httpsPort := freePort()
	nsCounter++
	ns := fmt.Sprintf("snip%d_%d", os.Getpid(), nsCounter)
	handler := fmt.Sprintf(saymonHandler, "")
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port 80
	https_port %d
	skip_install_trust
	local_certs
	register {
		store redis %s %s
		%s
		admin root %s manage-users
		smtp %s
		captcha_length 3
	}
}

localhost:%d {
	%s
}

http://localhost:80 {
	%s
}
`, adminPort, httpsPort, redisSrv.URL(0), ns, cheapHash, mustBcrypt(t, "rootpw"), sink.URL(), httpsPort, handler, handler)
	tc := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{TestRequestTimeout: 60 * time.Second})
	tc.InitServer(cfg, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	s := &saymonSite{site: &site{t: t, tc: tc, backend: backendRedis, ns: ns, base: "http://localhost:80"}, sink: sink}
	s.rdb = redisClient(t)
	s.client = tc.Client
	rootCA := filepath.Join(caddy.AppDataDir(), "pki", "authorities", "local", "root.crt")

	run := func(name, bin, script string, env ...string) string {
		t.Helper()
		f := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, f)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	check := func(name, out, login, email string) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%s printed %q", name, out)
		}
		id, _ := m["id"].(string)
		want := strings.NewReplacer(`"user_login"`, `"`+login+`"`, `"user_email@example.com"`, `"`+email+`"`).Replace(docUserModel)
		if out != compactJSON(t, want+`, "id": "`+id+`"}`) || !regexp.MustCompile(`^[0-9a-f]{24}$`).MatchString(id) {
			t.Fatalf("%s printed\n%s\nwant the documented model", name, out)
		}
	}

	// Python, over HTTPS with Caddy's local CA.
	tok, ans := s.challenge()
	script := strings.NewReplacer("5c2ef019-cca8-40de-b306-050dd976c743", tok, `"1qTY"`, `"`+ans+`"`).
		Replace(fill(pythonSnippet, `"root"`, `"rootpw"`, fmt.Sprintf(`"localhost:%d"`, httpsPort)))
	out := run("signup.py", py, script, "REQUESTS_CA_BUNDLE="+rootCA)
	check("python", out, "user_login", "user_email@example.com")

	// Node over plain HTTP; e-mail and login differ, as the first exists.
	tok, ans = s.challenge()
	script = strings.NewReplacer("5c2ef019-cca8-40de-b306-050dd976c743", tok, `"1qTY"`, `"`+ans+`"`,
		`"user_login"`, `"node_login"`, `"user_email@example.com"`, `"node@example.com"`).
		Replace(fill(nodeSnippet, `"root"`, `"rootpw"`, `"localhost"`))
	out = run("signup.js", node, script)
	check("node", out, "node_login", "node@example.com")
}
