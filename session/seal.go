package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// A sealed cookie value is
//
//	base64url(version || nonce || ciphertext)    unpadded
//
// where ciphertext is the record under AES-256-GCM with its 16-byte tag, the
// nonce is 96 random bits, new for every seal, and the additional
// authenticated data is the version byte and the cookie's name, so a value
// sealed for one cookie never opens as another. Cookies carry no expiry of
// their own: every record holds the time it was sealed, and Load and
// TakePending check its age.
//
// This is the standard library's AEAD rather than gorilla/securecookie's
// AES-CTR, then HMAC-SHA256 over name, timestamp and base64 ciphertext, then
// base64 again: GCM encrypts and authenticates in one pass, with no separate
// MAC key, no inner encoding and none of the copies between the layers, on the
// path every proxied request takes. Random 96-bit nonces bound a key to about
// 2^32 seals before a repeated nonce becomes a real risk; keys are per
// deployment and purpose, and a deployment seals a cookie per login, step-up
// and pending flow, so the bound is out of reach.
const (
	sealVersion  = 0x01
	sealOverhead = 1 + 12 + 16 // version, nonce, tag
	// maxSealedLen is the most a value of maxCookieLen characters decodes to.
	maxSealedLen = maxCookieLen / 4 * 3
)

// b64 is unpadded base64url that also refuses stray bits in the last
// character. It still skips CR and LF, which open refuses first.
var b64 = base64.RawURLEncoding.Strict()

// keyring seals and opens the cookies of one purpose: index 0 seals, every
// key opens, so that a secret can be rotated.
type keyring []cipher.AEAD

// newAEAD derives the AES-256-GCM key for one secret, purpose and deployment.
func newAEAD(secret []byte, d deployment, label string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, keyInfo(label, d), 32) // AES-256
	if err != nil {
		return nil, fmt.Errorf("session: deriving key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("session: key: %w", err)
	}
	// The nonce is drawn from crypto/rand, prepended by Seal and taken off
	// again by Open.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("session: key: %w", err)
	}
	return aead, nil
}

// seal seals record for the cookie called name, using sc's buffers. record
// may be built in sc.text: it is read before the encoded value is written.
func (k keyring) seal(sc *scratch, name string, record []byte) (string, error) {
	if n := b64.EncodedLen(sealOverhead + len(record)); n > maxCookieLen {
		return "", fmt.Errorf("session: cookie %q is too long: %d bytes sealed; want at most %d", name, n, maxCookieLen)
	}
	sealed := k[0].Seal(append(sc.sealed[:0], sealVersion), nil, record, sc.aad(name))
	return string(b64.AppendEncode(sc.text[:0], sealed)), nil
}

// open authenticates and decrypts value, which arrived as the cookie called
// name, into sc.text. The result is valid until sc is freed.
func (k keyring) open(sc *scratch, name, value string) ([]byte, error) {
	// Before any decoding or crypto: an oversized value costs nothing.
	if len(value) > maxCookieLen {
		return nil, fmt.Errorf("session: cookie %q is %d bytes; want at most %d", name, len(value), maxCookieLen)
	}
	sealed, err := decode(sc, value)
	if err != nil {
		return nil, failedAuth(name, err)
	}
	if len(sealed) < sealOverhead {
		return nil, failedAuth(name, fmt.Errorf("%d bytes; want at least %d", len(sealed), sealOverhead))
	}
	if sealed[0] != sealVersion {
		return nil, failedAuth(name, fmt.Errorf("format version %#x; want %#x", sealed[0], sealVersion))
	}
	aad := sc.aad(name)
	for _, aead := range k {
		// Not in place: a failed Open wipes its output, and the next key
		// needs the ciphertext intact.
		if b, err := aead.Open(sc.text[:0], nil, sealed[1:], aad); err == nil {
			return b, nil
		}
	}
	return nil, failedAuth(name, errors.New("no key opens it"))
}

// decode decodes value, at most maxCookieLen bytes, into sc.sealed.
func decode(sc *scratch, value string) ([]byte, error) {
	// The decoder skips CR and LF; refused here, a value has one spelling
	// and none that net/http would drop as no cookie at all.
	if strings.IndexByte(value, '\r') >= 0 || strings.IndexByte(value, '\n') >= 0 {
		return nil, errors.New("line break in the value; want base64url")
	}
	n, err := b64.Decode(sc.sealed[:], []byte(value))
	if err != nil {
		// The decoder's error names a position, never the value.
		return nil, err
	}
	return sc.sealed[:n], nil
}

func failedAuth(name string, err error) error {
	return fmt.Errorf("session: cookie %q failed authentication (key rotated, tampered with, or sealed for another cookie or deployment): %w", name, err)
}

// scratch holds the buffers of one seal or open, so that opening the
// session cookie on every request allocates only what the State keeps.
type scratch struct {
	sealed [maxSealedLen]byte // version, nonce, ciphertext
	text   [maxCookieLen]byte // the record opened, or the value encoded
	ad     [64]byte           // additional data; longer names spill to the heap
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// free returns sc to the pool, wiping the record it may hold first, so that
// session contents do not linger in pooled memory.
func (sc *scratch) free() {
	clear(sc.text[:])
	scratchPool.Put(sc)
}

// aad returns the additional authenticated data for the cookie called name.
func (sc *scratch) aad(name string) []byte {
	return append(append(sc.ad[:0], sealVersion), name...)
}
