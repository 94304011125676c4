package webhooks

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The vector was computed independently: python3 -c "import hmac,hashlib;
// print(hmac.new(b'whsec_test_vector', b'1700000000.' + body, hashlib.sha256).hexdigest())"
const (
	vectorSecret = "whsec_test_vector"
	vectorBody   = `{"app_id":"shop_b","event_id":"0190a5b2-0000-7000-8000-000000000001","seq":"1"}`
	vectorSig    = "5083c1e19b05d45f1712b5a9f4f1ffa4678f4bb60d98245f802dbf9b7dcdc07c"
)

func TestSignatureMatchesTheFixedVector(t *testing.T) {
	if got := Sign(vectorSecret, 1700000000, []byte(vectorBody)); got != vectorSig {
		t.Fatalf("Sign = %s; want %s", got, vectorSig)
	}
	header := SignatureValue(1700000000, []byte(vectorBody), vectorSecret)
	if header != "t=1700000000,v1="+vectorSig {
		t.Errorf("header = %q", header)
	}
	at := time.Unix(1700000000, 0).Add(time.Minute)
	two := SignatureValue(1700000000, []byte(vectorBody), "whsec_new", vectorSecret)
	tests := []struct {
		name   string
		header string
		body   string
		secret string
		want   error
	}{
		{"valid", header, vectorBody, vectorSecret, nil},
		{"rotation: old secret", two, vectorBody, vectorSecret, nil},
		{"rotation: new secret", two, vectorBody, "whsec_new", nil},
		{"forged body", header, strings.Replace(vectorBody, `"seq":"1"`, `"seq":"2"`, 1), vectorSecret, ErrBadSignature},
		{"wrong secret", header, vectorBody, "whsec_other", ErrBadSignature},
		{"timestamp changed", strings.Replace(header, "t=1700000000", "t=1700000030", 1), vectorBody, vectorSecret, ErrBadSignature},
		{"no v1", "t=1700000000", vectorBody, vectorSecret, ErrBadHeader},
		{"garbage", "nonsense", vectorBody, vectorSecret, ErrBadHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.header, []byte(tc.body), tc.secret, 5*time.Minute, at); !errors.Is(err, tc.want) && err != tc.want {
				t.Errorf("Verify = %v; want %v", err, tc.want)
			}
		})
	}
	if err := Verify(header, []byte(vectorBody), vectorSecret, 5*time.Minute, at.Add(time.Hour)); !errors.Is(err, ErrTooOld) {
		t.Errorf("Verify an hour late = %v; want ErrTooOld", err)
	}
}

func TestCheckAddr(t *testing.T) {
	tests := []struct {
		ip       string
		loopback bool // allowed
		ok       bool
	}{
		{"93.184.216.34", false, true},
		{"2606:2800:220:1:248:1893:25c8:1946", false, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1", true, true},
		{"::1", true, true},
		{"::1", false, false},
		{"::ffff:127.0.0.1", false, false},
		{"10.1.2.3", true, false},
		{"172.16.0.1", true, false},
		{"192.168.1.1", true, false},
		{"169.254.169.254", true, false},
		{"fd00:ec2::254", true, false},
		{"fe80::1", true, false},
		{"100.100.100.200", false, false},
		{"0.0.0.0", true, false},
		{"::", true, false},
		{"224.0.0.1", false, false},
		{"64:ff9b::a00:1", false, false},
	}
	for _, tc := range tests {
		err := checkAddr(netip.MustParseAddr(tc.ip), tc.loopback)
		if (err == nil) != tc.ok {
			t.Errorf("checkAddr(%s, loopback=%v) = %v; want ok=%v", tc.ip, tc.loopback, err, tc.ok)
		}
	}
}
