package indiqus

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/contract"
	"github.com/caddyregister/caddyregister/caddyregister/refdata"
)

// TaxType is an operator-configured tax type and the rules its ids follow.
type TaxType struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	AlphaNum bool   `json:"alpha_num"`
	Min      int    `json:"min,omitempty"`
	Max      int    `json:"max,omitempty"`
}

// config is what the operator sets in the handler block (see README).
type config struct {
	Currencies     []string
	TaxCategories  []string
	TaxTypes       []TaxType
	Regions        []string
	ResellerCodes  []string
	MobileDigits   int
	AccountPrefix  string
	IdempotencyTTL time.Duration
	LoginPath      string
}

var knownOptions = []string{"currencies", "tax_categories", "tax_type", "regions", "reseller_codes", "mobile_digits", "account_prefix", "idempotency_ttl", "login_path"}

func parseConfig(o contract.Options) (*config, error) {
	if err := o.Check(Name, knownOptions...); err != nil {
		return nil, err
	}
	c := &config{
		Currencies:    o.All("currencies"),
		TaxCategories: o.All("tax_categories"),
		Regions:       o.All("regions"),
		ResellerCodes: o.All("reseller_codes"),
		AccountPrefix: "API",
		LoginPath:     "/auth/login",
	}
	for _, cur := range c.Currencies {
		if !refdata.ValidCurrency(cur) {
			return nil, fmt.Errorf("currencies: %q is not an ISO 4217 currency code", cur)
		}
	}
	for _, line := range o["tax_type"] {
		tt, err := parseTaxType(line)
		if err != nil {
			return nil, err
		}
		if slices.ContainsFunc(c.TaxTypes, func(x TaxType) bool { return x.Name == tt.Name }) {
			return nil, fmt.Errorf("tax_type %s declared twice", tt.Name)
		}
		c.TaxTypes = append(c.TaxTypes, tt)
	}
	if a := o.Last("mobile_digits"); a != nil {
		n, err := strconv.Atoi(strings.Join(a, ""))
		if len(a) != 1 || err != nil || n < 4 || n > 15 {
			return nil, fmt.Errorf("mobile_digits: want one number from 4 to 15")
		}
		c.MobileDigits = n
	}
	if a := o.Last("account_prefix"); a != nil {
		if len(a) != 1 || a[0] == "" {
			return nil, fmt.Errorf("account_prefix: want one word")
		}
		c.AccountPrefix = a[0]
	}
	if a := o.Last("idempotency_ttl"); a != nil {
		d, err := time.ParseDuration(strings.Join(a, ""))
		if len(a) != 1 || err != nil || d <= 0 {
			return nil, fmt.Errorf("idempotency_ttl: want one positive duration")
		}
		c.IdempotencyTTL = d
	}
	if a := o.Last("login_path"); a != nil {
		if len(a) != 1 || !strings.HasPrefix(a[0], "/") {
			return nil, fmt.Errorf("login_path: want one absolute path")
		}
		c.LoginPath = a[0]
	}
	return c, nil
}

// parseTaxType reads "<name> [required] [alpha_num] [min <n>] [max <n>]".
func parseTaxType(args []string) (TaxType, error) {
	if len(args) == 0 {
		return TaxType{}, fmt.Errorf("tax_type: want <name> [required] [alpha_num] [min <n>] [max <n>]")
	}
	tt := TaxType{Name: args[0]}
	for i := 1; i < len(args); i++ {
		switch args[i] {
		case "required":
			tt.Required = true
		case "alpha_num":
			tt.AlphaNum = true
		case "min", "max":
			if i+1 >= len(args) {
				return tt, fmt.Errorf("tax_type %s: %s needs a number", tt.Name, args[i])
			}
			n, err := strconv.Atoi(args[i+1])
			if err != nil || n < 0 {
				return tt, fmt.Errorf("tax_type %s: %s must be a non-negative integer", tt.Name, args[i])
			}
			if args[i] == "min" {
				tt.Min = n
			} else {
				tt.Max = n
			}
			i++
		default:
			return tt, fmt.Errorf("tax_type %s: unknown rule %q", tt.Name, args[i])
		}
	}
	if tt.Max > 0 && tt.Min > tt.Max {
		return tt, fmt.Errorf("tax_type %s: min is above max", tt.Name)
	}
	return tt, nil
}

func (c *config) taxType(name string) (TaxType, bool) {
	for _, t := range c.TaxTypes {
		if t.Name == name {
			return t, true
		}
	}
	return TaxType{}, false
}
