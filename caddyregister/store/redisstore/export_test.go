package redisstore

import "time"

// SetReserveTTL shortens a cluster store's reservations, so a test can
// see one lapse.
func SetReserveTTL(s *ClusterStore, d time.Duration) { s.reserveTTL = d }
