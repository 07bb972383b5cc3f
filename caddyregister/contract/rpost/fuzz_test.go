package rpost

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// docSample is the document's sample request; its RegistrationApp "[App]"
// is a placeholder, but a valid string of at most 30 characters.
const docSample = `{
"Email": "user@company.com",
"Password": "Secret007",
"ConfirmPassword": "Secret007",
"FirstName": "John",
"LastName": "Smith",
"PhoneNumber": "3102100990",
"AlternateEmail": null,
"ConfirmationCallbackUrl": null,
"RegistrationApp": "[App]",
"Language": "en-us",
"TimeZone": "US Eastern Standard Time",
"NotificationEmail": null,
"Country": null,
"CompanyName": null,
"Industry": null,
"RPostTermCondition": null,
"ClientId": null,
"CustomerCode": null,
"IsAdminUser": null,
"ActivateViaCallbackUrl": null,
"IPAddress": null,
"OriginatingURL": null,
"RegistrationAppSite": null
}`

func testContract(tb testing.TB) *Contract {
	tb.Helper()
	c, err := New(contract.Env{Prefix: "/api/v1", Options: contract.Options{optCallbackOrigins: {{"https://app.example.com", "http://localhost:3000"}}}})
	if err != nil {
		tb.Fatal(err)
	}
	return c.(*Contract)
}

// FuzzDecodeRegister feeds arbitrary bodies through binding and
// validation: no panic; a failure is a ModelState whose keys are "model"
// (the body) or "model.<Property>", each with messages.
func FuzzDecodeRegister(f *testing.F) {
	f.Add([]byte(docSample))
	f.Add([]byte(`{"email":"a@b.co","PASSWORD":"Secret007","firstname":"J","lastname":"S","registrationapp":"x","language":"EN-US","timezone":"us eastern standard time","Country":"deu"}`))
	f.Add([]byte(`{"Email": 12, "IsAdminUser": "yes", "RPostTermCondition": 1, "FirstName": {"a":[1]}, "ConfirmationCallbackUrl": "javascript:alert(1)"}`))
	f.Add([]byte(`{"ConfirmationCallbackUrl":"https://user:pw@app.example.com/x","ActivateViaCallbackUrl":true}`))
	f.Add([]byte(`{"Email": "x",}`))
	c := testContract(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		form, be, err := bind(body)
		if err != nil {
			var de *contract.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("bind error of type %T: %v", err, err)
			}
			checkState(t, c, err)
			return
		}
		v := c.val.validate(form, be)
		if v == nil {
			// A valid model has what Register needs.
			for _, i := range []int{pEmail, pPassword, pFirstName, pLastName, pRegistrationApp, pLanguage} {
				if strings.TrimSpace(form.str(i)) == "" {
					t.Fatalf("valid model without %s", props[i].Name)
				}
			}
			if _, err := attributes(form); err != nil {
				t.Fatal(err)
			}
			return
		}
		checkState(t, c, v)
	})
}

// checkState renders err as the contract does and checks the ModelState.
func checkState(t *testing.T, c *Contract, err error) {
	t.Helper()
	w := &recorder{}
	c.WriteError(w, nil, err)
	if w.status != 400 {
		t.Fatalf("status %d for %v", w.status, err)
	}
	var body struct {
		Message    string
		ModelState map[string][]string
	}
	if err := json.Unmarshal(w.body, &body); err != nil {
		t.Fatalf("reply is not JSON: %v: %s", err, w.body)
	}
	if body.Message != msgInvalid || len(body.ModelState) == 0 {
		t.Fatalf("reply: %s", w.body)
	}
	for k, msgs := range body.ModelState {
		if k != "model" && !strings.HasPrefix(k, "model.") {
			t.Fatalf("key %q", k)
		}
		if len(msgs) == 0 {
			t.Fatalf("key %q without messages", k)
		}
		for _, m := range msgs {
			if m == "" {
				t.Fatalf("empty message under %q", k)
			}
		}
	}
}
