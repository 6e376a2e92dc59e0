package purge

import (
	"strings"
	"time"
)

// ClassCost is what S3 charges for an object of a storage class deleted
// early: S3 bills every object of the class for at least MinDays, so one
// deleted sooner costs the remaining days at the class's storage price,
// and bills an object smaller than MinSize as MinSize.
type ClassCost struct {
	MinDays int
	MinSize int64
	// USDPerGBMonth is the list price of storage, per GiB and 30-day month.
	USDPerGBMonth float64
}

// ClassCosts is the one price table s3bak knows: minimum storage durations
// and storage list prices of Amazon S3 in us-east-1 (USD, 2025). Prices
// vary by region and change; the minimums do not vary by region. Classes
// without a minimum (STANDARD, INTELLIGENT_TIERING, REDUCED_REDUNDANCY)
// cost nothing to delete early and are not listed.
var ClassCosts = map[string]ClassCost{
	"STANDARD_IA":  {MinDays: 30, MinSize: 128 << 10, USDPerGBMonth: 0.0125},
	"ONEZONE_IA":   {MinDays: 30, MinSize: 128 << 10, USDPerGBMonth: 0.01},
	"GLACIER_IR":   {MinDays: 90, MinSize: 128 << 10, USDPerGBMonth: 0.004},
	"GLACIER":      {MinDays: 90, USDPerGBMonth: 0.0036},
	"DEEP_ARCHIVE": {MinDays: 180, USDPerGBMonth: 0.00099},
}

// EarlyDeletion sums the charges of deleting objects before their class's
// minimum storage duration.
type EarlyDeletion struct {
	Objects int   `json:"objects"`
	Bytes   int64 `json:"bytes"`
	// USD is at ClassCosts' list prices.
	USD float64 `json:"usd"`
}

// Charge is the early-deletion charge, in USD at list price, of deleting
// now an object of size bytes and class stored since modified; 0 when its
// class has no minimum or the minimum has passed.
func Charge(class string, size int64, modified, now time.Time) float64 {
	c, ok := ClassCosts[strings.ToUpper(class)]
	if !ok {
		return 0
	}
	left := modified.Add(time.Duration(c.MinDays) * 24 * time.Hour).Sub(now)
	if left <= 0 {
		return 0
	}
	billed := max(size, c.MinSize)
	return float64(billed) / (1 << 30) * c.USDPerGBMonth * left.Hours() / (30 * 24)
}

func (e *EarlyDeletion) add(class string, size int64, modified, now time.Time) {
	if usd := Charge(class, size, modified, now); usd > 0 {
		e.Objects++
		e.Bytes += size
		e.USD += usd
	}
}
