package indiqus

import (
	"errors"
	"testing"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
)

// docSample is the document's sample request, typographic quote included.
const docSample = `{
"fname": "user",
"lname": "sample",
"email": "usersample@gmail.com",
"organization_name": “Indiqus",
"countryCode": "91",
"mobileNumber": "9876543210",
"password": "UserSam@178",
"acsRegion": "noida",
"address": "xyz street",
"city": "Bangalore",
"state": "Karnataka",
"country": "IN",
"zipcode": 607878,
"currency": "INR",
"tax_category": "Taxable",
"tax_type1": "CNPJ",
"taxation_id1": "3453242343234",
"tax_type2": "GSTIN",
"taxation_id2": "1234567890",
"tax_type3": "",
"taxation_id3": "",
"credit_period": 2,
"credit_limit": 1000,
"resellerCode": "CODE"
}`

func demoContract(t testing.TB) *Contract {
	t.Helper()
	c, err := New(contract.Env{Options: contract.Options{
		"currencies":     {{"INR", "USD"}},
		"tax_categories": {{"Taxable"}},
		"tax_type":       {{"GSTIN", "required", "alpha_num", "min", "10", "max", "15"}, {"CNPJ", "required", "alpha_num", "min", "13", "max", "14"}},
		"regions":        {{"noida"}},
		"reseller_codes": {{"CODE"}},
		"mobile_digits":  {{"10"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Contract)
}

// FuzzDecodeCreate feeds arbitrary bodies through the createNewUser
// decoder and validator: no panic, and every failure names a field.
func FuzzDecodeCreate(f *testing.F) {
	f.Add([]byte(docSample))
	f.Add([]byte(`{"zipcode": "12", "credit_period": 1e400, "countryCode": "+91"}`))
	f.Add([]byte(`{"tax_type1": "GSTIN", "taxation_id1": null, "state": "IN-KA", "country": "IN"}`))
	c := demoContract(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		raw, err := decodeCreate(body)
		if err != nil {
			var de *contract.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("decode error of type %T", err)
			}
			return
		}
		reg := c.validate(raw)
		for _, fe := range reg.Invalid.Fields {
			if fe.Field == "" || fe.Message == "" {
				t.Fatalf("field error without field or message: %+v", fe)
			}
		}
	})
}

func TestDocSampleFixedValidates(t *testing.T) {
	c := demoContract(t)
	fixed := []byte(docSample)
	for i := 0; i+3 <= len(fixed); i++ {
		if string(fixed[i:i+3]) == "“" {
			fixed = append(append(append([]byte{}, fixed[:i]...), '"'), fixed[i+3:]...)
			break
		}
	}
	raw, err := decodeCreate(fixed)
	if err != nil {
		t.Fatal(err)
	}
	if reg := c.validate(raw); reg.Invalid.Err() != nil {
		t.Fatalf("the fixed sample fails: %v", reg.Invalid.Fields)
	}
}
