package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
)

// box encrypts signing secrets at rest (AES-256-GCM). They must be readable to sign, so they
// cannot be hashed like API keys; a database dump alone does not reveal them.
type box struct{ aead cipher.AEAD }

// newBox takes a 32-byte key as 64 hex characters or standard base64.
func newBox(key string) (*box, error) {
	raw, err := hex.DecodeString(key)
	if err != nil || len(raw) != 32 {
		raw, err = base64.StdEncoding.DecodeString(key)
	}
	if err != nil || len(raw) != 32 {
		return nil, errors.New("WEBHOOK_SECRET_KEY must be 32 bytes, as 64 hex characters or base64")
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &box{aead: aead}, nil
}

// seal returns nonce || ciphertext.
func (b *box) seal(plain string) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	_, _ = rand.Read(nonce) // crypto/rand never fails on supported platforms
	return b.aead.Seal(nonce, nonce, []byte(plain), nil)
}

func (b *box) open(sealed []byte) (string, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed secret too short")
	}
	plain, err := b.aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return "", errors.New("cannot decrypt a signing secret: WEBHOOK_SECRET_KEY is not the key it was stored with")
	}
	return string(plain), nil
}
