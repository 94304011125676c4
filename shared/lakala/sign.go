// Package lakala speaks the Lakala Open Platform v3 protocol: request, response and
// notification signatures, the JSON wire types, notification parsing, and an HTTP client.
// The signing functions serve both sides, so the local sandbox uses them too.
package lakala

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrBadSignature is wrapped by every verification failure, so callers can tell a forged
// or malformed message from other errors with errors.Is.
var ErrBadSignature = errors.New("lakala: bad or missing signature")

// AuthScheme is the scheme word that opens every Lakala Authorization header.
const AuthScheme = "LKLAPI-SHA256withRSA"

// Response signature headers, in the canonical form net/http uses.
const (
	HeaderAppID     = "Lklapi-Appid"
	HeaderSerial    = "Lklapi-Serial"
	HeaderTimestamp = "Lklapi-Timestamp"
	HeaderNonce     = "Lklapi-Nonce"
	HeaderSignature = "Lklapi-Signature"
	HeaderTraceID   = "Lklapi-Traceid"
)

// Credentials identify the merchant to Lakala and sign its requests.
type Credentials struct {
	AppID string
	// SerialNo is the literal string Lakala issued; it may keep a leading "00" and must
	// not be recomputed from the certificate.
	SerialNo   string
	PrivateKey *rsa.PrivateKey
}

// ParsePrivateKey reads an RSA private key from PEM, PKCS#8 ("PRIVATE KEY") or
// PKCS#1 ("RSA PRIVATE KEY"), or from bare Base64 DER of either.
func ParsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, err := decodePEMOrBase64(pemBytes, "PRIVATE KEY")
	if err != nil {
		return nil, fmt.Errorf("lakala: private key: %w", err)
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		rsaKey, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("lakala: private key: PKCS#8 key is %T, not RSA", k)
		}
		return rsaKey, nil
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("lakala: private key: neither PKCS#8 nor PKCS#1 RSA: %w", err)
	}
	return k, nil
}

// ParsePublicKey reads an RSA public key from a "CERTIFICATE", "PUBLIC KEY" (PKIX) or
// "RSA PUBLIC KEY" (PKCS#1) PEM block. Bare Base64 DER is read as a certificate, falling
// back to a PKIX public key.
func ParsePublicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	k, _, err := ParsePlatformCert(pemBytes)
	return k, err
}

// ParsePlatformCert is ParsePublicKey that also returns the certificate's serial number, which
// Lakala names in every response's Lklapi-Serial; serial is nil when a bare key was given.
func ParsePlatformCert(pemBytes []byte) (_ *rsa.PublicKey, serial *big.Int, _ error) {
	block, err := decodePEMOrBase64(pemBytes, "CERTIFICATE")
	if err != nil {
		return nil, nil, fmt.Errorf("lakala: public key: %w", err)
	}
	var pub any
	switch block.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			k, pkixErr := x509.ParsePKIXPublicKey(block.Bytes)
			if pkixErr != nil {
				return nil, nil, fmt.Errorf("lakala: public key: certificate: %w", err)
			}
			pub = k
			break
		}
		pub, serial = cert.PublicKey, cert.SerialNumber
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("lakala: public key: %w", err)
		}
		pub = k
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("lakala: public key: %w", err)
		}
		pub = k
	default:
		return nil, nil, fmt.Errorf("lakala: public key: unsupported PEM block %q", block.Type)
	}
	rsaPub, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("lakala: public key is %T, not RSA", pub)
	}
	return rsaPub, serial, nil
}

// decodePEMOrBase64 returns the first PEM block, or, because Lakala's key tool also hands
// out bare Base64 DER without PEM armour, a block of bareType holding the decoded bytes.
func decodePEMOrBase64(data []byte, bareType string) (*pem.Block, error) {
	if block, _ := pem.Decode(data); block != nil {
		return block, nil
	}
	compact := strings.Join(strings.Fields(string(data)), "")
	der, err := base64.StdEncoding.DecodeString(compact)
	if compact == "" || err != nil {
		return nil, errors.New("neither PEM nor Base64 DER")
	}
	return &pem.Block{Type: bareType, Bytes: der}, nil
}

// MarshalPrivateKeyPEM encodes k as a PKCS#8 PEM block, the form Lakala's tools produce.
func MarshalPrivateKeyPEM(k *rsa.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		// Only unsupported key types fail here, and k is always RSA.
		panic(fmt.Sprintf("lakala: marshal RSA private key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// SelfSignedCertPEM wraps k's public half in a self-signed certificate, so sandbox and
// development keys can be handed around in the same "CERTIFICATE" form Lakala uses.
func SelfSignedCertPEM(k *rsa.PrivateKey, commonName string) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, fmt.Errorf("lakala: certificate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return nil, fmt.Errorf("lakala: create certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

const nonceAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// NewNonce returns 32 random characters from [0-9A-Za-z], the longest nonce Lakala accepts.
func NewNonce() string {
	const size = 32
	// Rejection sampling keeps the distribution uniform: 248 is the largest multiple of 62
	// below 256.
	const limit = 256 - 256%len(nonceAlphabet)
	out := make([]byte, 0, size)
	buf := make([]byte, size*2)
	for len(out) < size {
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("lakala: crypto/rand failed: %v", err))
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, nonceAlphabet[int(b)%len(nonceAlphabet)])
			if len(out) == size {
				break
			}
		}
	}
	return string(out)
}

// signedMessage joins the parts with LF and ends with LF, which is Lakala's
// signed-string layout for requests, responses and notifications alike.
func signedMessage(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	msg := make([]byte, 0, n)
	for _, p := range parts {
		msg = append(msg, p...)
		msg = append(msg, '\n')
	}
	return msg
}

func signMessage(k *rsa.PrivateKey, msg []byte) (string, error) {
	if k == nil {
		return "", errors.New("lakala: sign: no private key")
	}
	digest := sha256.Sum256(msg)
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("lakala: sign: %w", err)
	}
	return base64.StdEncoding.EncodeToString(sig), nil
}

func verifyMessage(pub *rsa.PublicKey, msg []byte, signatureB64 string) error {
	if pub == nil {
		return fmt.Errorf("%w: no public key to verify with", ErrBadSignature)
	}
	sig, err := base64.StdEncoding.DecodeString(signatureB64)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64: %v", ErrBadSignature, err)
	}
	digest := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return nil
}

func unixSeconds(now time.Time) string {
	return strconv.FormatInt(now.Unix(), 10)
}

func parseUnixSeconds(s string) (time.Time, error) {
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrBadSignature, s)
	}
	return time.Unix(sec, 0), nil
}

// SignRequest returns the Authorization header value for a request body:
// LKLAPI-SHA256withRSA appid="…",serial_no="…",timestamp="…",nonce_str="…",signature="…"
// body must be exactly the bytes that will be sent.
func SignRequest(c Credentials, body []byte, now time.Time) (string, error) {
	ts, nonce := unixSeconds(now), NewNonce()
	sig, err := signMessage(c.PrivateKey, signedMessage([]byte(c.AppID), []byte(c.SerialNo), []byte(ts), []byte(nonce), body))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`%s appid="%s",serial_no="%s",timestamp="%s",nonce_str="%s",signature="%s"`,
		AuthScheme, c.AppID, c.SerialNo, ts, nonce, sig), nil
}

// RequestAuth is what a server (the sandbox) learns from a verified request.
type RequestAuth struct {
	AppID, SerialNo, Nonce string
	Timestamp              time.Time
}

// parseAuthorization splits an Authorization value into its key/value pairs. It is
// deliberately lenient in the ways Lakala's own samples require: newlines after commas,
// '=' inside the Base64 signature, optional quotes.
func parseAuthorization(value string) (map[string]string, error) {
	value = strings.TrimSpace(value)
	rest, ok := strings.CutPrefix(value, AuthScheme)
	if !ok || (rest != "" && !strings.ContainsAny(rest[:1], " \t\r\n")) {
		return nil, fmt.Errorf("%w: Authorization scheme is not %s", ErrBadSignature, AuthScheme)
	}
	pairs := make(map[string]string)
	for item := range strings.SplitSeq(rest, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, found := strings.Cut(item, "=")
		if !found {
			return nil, fmt.Errorf("%w: Authorization item %q has no '='", ErrBadSignature, item)
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		pairs[strings.TrimSpace(key)] = val
	}
	return pairs, nil
}

// requireFields returns the values of names in order, or an error naming the first
// missing or empty one.
func requireFields(source string, get func(string) string, names ...string) ([]string, error) {
	vals := make([]string, len(names))
	for i, name := range names {
		v := get(name)
		if v == "" {
			return nil, fmt.Errorf("%w: %s lacks %s", ErrBadSignature, source, name)
		}
		vals[i] = v
	}
	return vals, nil
}

// VerifyRequest checks a merchant request's Authorization header against the merchant's
// public key. Checking the timestamp's age and the nonce's uniqueness is left to the caller.
func VerifyRequest(pub *rsa.PublicKey, authorization string, body []byte) (RequestAuth, error) {
	pairs, err := parseAuthorization(authorization)
	if err != nil {
		return RequestAuth{}, err
	}
	get := func(k string) string { return pairs[k] }
	v, err := requireFields("Authorization", get, "appid", "serial_no", "timestamp", "nonce_str", "signature")
	if err != nil {
		return RequestAuth{}, err
	}
	appID, serial, ts, nonce, sig := v[0], v[1], v[2], v[3], v[4]
	signedAt, err := parseUnixSeconds(ts)
	if err != nil {
		return RequestAuth{}, err
	}
	if err := verifyMessage(pub, signedMessage([]byte(appID), []byte(serial), []byte(ts), []byte(nonce), body), sig); err != nil {
		return RequestAuth{}, err
	}
	return RequestAuth{AppID: appID, SerialNo: serial, Nonce: nonce, Timestamp: signedAt}, nil
}

// VerifyRequestFor is VerifyRequest with the public key looked up by the appid and serial_no the
// request names, as Lakala does: each merchant's certificates by serial number (a rotation adds
// one, and the old one may stay valid for a while). A lookup that fails is a bad signature.
func VerifyRequestFor(keyOf func(appID, serialNo string) (*rsa.PublicKey, error), authorization string, body []byte) (RequestAuth, error) {
	pairs, err := parseAuthorization(authorization)
	if err != nil {
		return RequestAuth{}, err
	}
	pub, err := keyOf(pairs["appid"], pairs["serial_no"])
	if err != nil {
		return RequestAuth{}, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return VerifyRequest(pub, authorization, body)
}

// SetResponseSignature sets Lklapi-Appid, Lklapi-Serial, Lklapi-Timestamp, Lklapi-Nonce,
// Lklapi-Signature (and Lklapi-Traceid, unless already set) for a response body, signed by
// the platform key.
func SetResponseSignature(h http.Header, platformKey *rsa.PrivateKey, appID, serialNo string, body []byte, now time.Time) error {
	ts, nonce := unixSeconds(now), NewNonce()
	sig, err := signMessage(platformKey, signedMessage([]byte(appID), []byte(serialNo), []byte(ts), []byte(nonce), body))
	if err != nil {
		return err
	}
	h.Set(HeaderAppID, appID)
	h.Set(HeaderSerial, serialNo)
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderNonce, nonce)
	h.Set(HeaderSignature, sig)
	if h.Get(HeaderTraceID) == "" {
		h.Set(HeaderTraceID, NewNonce())
	}
	return nil
}

// VerifyResponse checks the Lklapi-* signature headers of a synchronous response against
// Lakala's platform key. body must be the raw bytes read from the response.
func VerifyResponse(platformPub *rsa.PublicKey, h http.Header, body []byte) error {
	v, err := requireFields("response", h.Get, HeaderAppID, HeaderSerial, HeaderTimestamp, HeaderNonce, HeaderSignature)
	if err != nil {
		return err
	}
	return verifyMessage(platformPub, signedMessage([]byte(v[0]), []byte(v[1]), []byte(v[2]), []byte(v[3]), body), v[4])
}

// SignNotification returns the Authorization value Lakala puts on a notification:
// LKLAPI-SHA256withRSA timestamp="…",nonce_str="…",signature="…"
func SignNotification(platformKey *rsa.PrivateKey, body []byte, now time.Time) (string, error) {
	ts, nonce := unixSeconds(now), NewNonce()
	sig, err := signMessage(platformKey, signedMessage([]byte(ts), []byte(nonce), body))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`%s timestamp="%s",nonce_str="%s",signature="%s"`, AuthScheme, ts, nonce, sig), nil
}

// VerifyNotification checks a notification: Authorization header first, falling back to
// Lklapi-Timestamp/Lklapi-Nonce/Lklapi-Signature (whether Lakala sends those on
// notifications is unconfirmed). It returns the signed timestamp for replay checks.
// body must be the raw request body, never a re-serialization.
func VerifyNotification(platformPub *rsa.PublicKey, h http.Header, body []byte) (signedAt time.Time, err error) {
	var authErr error
	if auth := h.Get("Authorization"); auth != "" {
		signedAt, authErr = verifyNotificationAuthorization(platformPub, auth, body)
		if authErr == nil {
			return signedAt, nil
		}
	}
	if h.Get(HeaderSignature) == "" {
		if authErr != nil {
			return time.Time{}, authErr
		}
		return time.Time{}, fmt.Errorf("%w: notification has neither Authorization nor %s", ErrBadSignature, HeaderSignature)
	}
	v, err := requireFields("notification", h.Get, HeaderTimestamp, HeaderNonce, HeaderSignature)
	if err != nil {
		return time.Time{}, errors.Join(authErr, err)
	}
	signedAt, err = parseUnixSeconds(v[0])
	if err != nil {
		return time.Time{}, errors.Join(authErr, err)
	}
	if err := verifyMessage(platformPub, signedMessage([]byte(v[0]), []byte(v[1]), body), v[2]); err != nil {
		return time.Time{}, errors.Join(authErr, err)
	}
	return signedAt, nil
}

func verifyNotificationAuthorization(pub *rsa.PublicKey, auth string, body []byte) (time.Time, error) {
	pairs, err := parseAuthorization(auth)
	if err != nil {
		return time.Time{}, err
	}
	v, err := requireFields("Authorization", func(k string) string { return pairs[k] }, "timestamp", "nonce_str", "signature")
	if err != nil {
		return time.Time{}, err
	}
	signedAt, err := parseUnixSeconds(v[0])
	if err != nil {
		return time.Time{}, err
	}
	if err := verifyMessage(pub, signedMessage([]byte(v[0]), []byte(v[1]), body), v[2]); err != nil {
		return time.Time{}, err
	}
	return signedAt, nil
}
