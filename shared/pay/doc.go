// Package pay is Loomi Pay's domain: payment and refund orders, their statuses and the only
// transitions allowed between them, request validation, the result messages main apps receive,
// and the one error type every layer speaks. It does no I/O and imports nothing of the project.
package pay
