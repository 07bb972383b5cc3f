package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/caddyregister/caddyregister/caddyregister/captcha"
	"github.com/caddyregister/caddyregister/caddyregister/store"
)

// DefaultChallengeTTL is how long a CAPTCHA may take to solve.
const DefaultChallengeTTL = 5 * time.Minute

// CAPTCHA errors. Contracts map them to their own codes and texts.
var (
	// ErrCaptchaRequired means the request carried no token or answer.
	ErrCaptchaRequired = errors.New("captcha required")
	// ErrCaptchaExpired means the token is unknown, expired or used: every
	// challenge is single-use, consumed by its first verification.
	ErrCaptchaExpired = errors.New("captcha expired or already used")
	// ErrCaptchaWrong means the answer did not match (the challenge is gone).
	ErrCaptchaWrong = errors.New("captcha answer is wrong")
)

// Challenge is a CAPTCHA to show: an SVG image and the token to send back
// with the answer.
type Challenge struct {
	SVG   string
	Token string
}

// NewChallenge draws a CAPTCHA and stores its answer (hashed) under a
// random 128-bit token for the challenge TTL.
func (e *Engine) NewChallenge(ctx context.Context) (*Challenge, error) {
	if e.captcha == nil {
		return nil, errors.New("captcha is not configured")
	}
	svg, answer, err := e.captcha.Generate()
	if err != nil {
		return nil, fmt.Errorf("draw captcha: %w", err)
	}
	tok := newChallengeToken()
	if err := e.cfg.Store.PutChallenge(ctx, tok, captcha.HashAnswer(answer), e.challengeTTL); err != nil {
		return nil, err
	}
	return &Challenge{SVG: svg, Token: tok}, nil
}

// VerifyChallenge consumes the challenge under token, right answer or
// wrong, in one atomic step: no two requests can pass with one token.
func (e *Engine) VerifyChallenge(ctx context.Context, token, answer string) error {
	if token == "" || captcha.Normalize(answer) == "" {
		return ErrCaptchaRequired
	}
	stored, err := e.cfg.Store.TakeChallenge(ctx, token)
	if errors.Is(err, store.ErrNotFound) {
		return ErrCaptchaExpired
	}
	if err != nil {
		return err
	}
	if !captcha.Check(stored, answer) {
		return ErrCaptchaWrong
	}
	return nil
}

// newChallengeToken is 128 random bits shaped like the UUID the saymon
// document shows, so clients that validate the shape accept it.
func newChallengeToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
