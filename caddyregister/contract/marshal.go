package contract

import (
	"bytes"
	"encoding/json"
)

// marshal encodes v without HTML escaping: these are API responses, and
// clients compare strings such as "User successfully created." byte for byte.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
