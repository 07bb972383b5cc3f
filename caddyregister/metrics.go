package caddyregister

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The collectors are process-wide so counts survive config reloads; each
// config's registry (ctx.GetMetricsRegistry) registers the same instances.
var (
	metricRegistrations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "register", Name: "registrations_total",
		Help: "Registrations by contract and outcome.",
	}, []string{"contract", "outcome"})
	metricRateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "register", Name: "rate_limited_total",
		Help: "Requests refused by a rate limit, by route.",
	}, []string{"route"})
	metricHash = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "register", Name: "hash_seconds",
		Help:    "Time spent hashing or verifying a password.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"algorithm"})
	metricMail = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "register", Name: "mail_total",
		Help: "Outbox deliveries by result: sent, failed (will retry), parked (gave up; needs an operator).",
	}, []string{"result"})
	metricWebhook = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "register", Name: "webhook_total",
		Help: "Webhook deliveries by result: sent, failed (will retry), parked (gave up or endpoint gone; needs an operator).",
	}, []string{"result"})
	metricHashWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "register", Name: "hash_queue_wait_seconds",
		Help:    "Time a request waited for a password hashing slot.",
		Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2, 5},
	})
)

func registerMetrics(ctx caddy.Context, log *zap.Logger) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{metricRegistrations, metricRateLimited, metricHash, metricHashWait, metricMail, metricWebhook} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				log.Warn("registering metric", zap.Error(err))
			}
		}
	}
}

type promMetrics struct{}

func (promMetrics) Registration(contract, outcome string) {
	metricRegistrations.WithLabelValues(contract, outcome).Inc()
}

func (promMetrics) RateLimited(route string) { metricRateLimited.WithLabelValues(route).Inc() }

type hashObserver struct{}

func (hashObserver) ObserveQueueWait(d time.Duration) { metricHashWait.Observe(d.Seconds()) }

func (hashObserver) ObserveHash(alg string, d time.Duration) {
	metricHash.WithLabelValues(alg).Observe(d.Seconds())
}

type mailObserver struct{}

func (mailObserver) Sent()   { metricMail.WithLabelValues("sent").Inc() }
func (mailObserver) Failed() { metricMail.WithLabelValues("failed").Inc() }
func (mailObserver) Parked() { metricMail.WithLabelValues("parked").Inc() }
