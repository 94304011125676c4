package lakala

import "errors"

// How an answer of Lakala's is read (docs/DECISIONS.md, "Lakala's answers"): a success code is
// applied; a code listed below for its endpoint is a definite refusal — nothing was applied —
// and everything else is unknown: network and system codes, "processing" codes, codes nobody
// published, HTTP errors, unreadable or unverifiable answers. An unknown create is settled by
// query (and a resubmission under the same number), an unknown refund by query, exactly as a
// lost answer is. A code is listed only with a source that says it was not applied.
//
// Codes Lakala's gateway answers when it could not finish talking to its back end: the operation
// may have been applied (so they are unknown, never refusals).
const (
	CodeNetworkFailure       = "BBS00100" // 网络请求失败 (labs family)
	CodeNetworkTimeout       = "BBS00101" // 网络请求超时 (labs family)
	CodeSystemError          = "BBS00001" // 系统异常
	CodeCashierNetworkFail   = "000100"   // 网络请求失败 (official PHP SDK, ModelResponse)
	CodeCashierNetworkTimout = "000101"   // 网络请求超时 (official PHP SDK, ModelResponse)
	CodeRfdUnknown           = "RFD11105" // 交易未知 (统一退货)
	CodeRfdTimeout           = "RFD11112" // 交易未知: 网络请求超时 (统一退货)
)

// Definite refusals of the labs and 统一退货 gateway: the request was refused before anything
// was applied.
const (
	CodeParamInvalid    = "BBS11000" // 参数校验失败: the request's parameters failed validation
	CodeSignatureFailed = "BBS11200" // 验签失败: Lakala could not verify our signature
	CodeParamNotFound   = "BBS11106" // 未查到参数: the trade code's parameters are not configured
)

// refusals lists, per endpoint, the codes that mean "not applied", each with its source. The
// cashier (/ccss/) endpoints publish none: their documentation lists only 000000, and the
// official PHP SDK's "其它 失败" is a catch-all that also covers its network codes.
var refusals = map[string]map[string]string{
	PathRefund: {
		CodeParamInvalid:    "cn.cc.lkl.dto.ReturnCode PARAMETER_VALIDATION_FAILED 参数校验失败",
		CodeSignatureFailed: "cn.cc.lkl.dto.ReturnCode SIGNATURE_VERIFICATION_FAILED 验签失败",
		CodeParamNotFound:   "cn.cc.lkl.dto.ReturnCode PARAMETER_NOT_FOUND 未查到交易码参数",
	},
	PathTradeQuery: {
		CodeParamInvalid:    "cn.cc.lkl.dto.ReturnCode PARAMETER_VALIDATION_FAILED 参数校验失败",
		CodeSignatureFailed: "cn.cc.lkl.dto.ReturnCode SIGNATURE_VERIFICATION_FAILED 验签失败",
	},
}

// RefusalCodes returns the codes an endpoint's answer may refuse with definitely, and the source
// of each (for the documentation and its test).
func RefusalCodes(path string) map[string]string { return refusals[path] }

// Refused reports whether code is a listed definite refusal of the endpoint at path.
func Refused(path, code string) bool {
	_, ok := refusals[path][code]
	return ok
}

// GatewayError is a verified answer of Lakala's whose code is not success. Refused says the code
// is listed as a definite refusal of its endpoint; any other code leaves the outcome unknown, and
// then the error also matches ErrOutcomeUnknown.
type GatewayError struct {
	Path    string
	Code    string
	Msg     string
	Refused bool
}

func (e *GatewayError) Error() string {
	if e.Refused {
		return "lakala: " + e.Path + " refused: " + e.Code + " " + e.Msg
	}
	return "lakala: outcome unknown: " + e.Path + ": code " + e.Code + " " + e.Msg
}

// Is makes an unlisted code's error match ErrOutcomeUnknown.
func (e *GatewayError) Is(target error) bool { return target == ErrOutcomeUnknown && !e.Refused }

// IsRefused reports a definite refusal: a verified answer with a code listed for its endpoint, or
// a request the client refused to send (nothing reached Lakala).
func IsRefused(err error) bool {
	var gw *GatewayError
	return errors.Is(err, ErrInvalidRequest) || (errors.As(err, &gw) && gw.Refused)
}

// IsAnswered reports a verified answer with a code that is not success, listed or not: Lakala
// heard the request and said no, whatever that means for the operation.
func IsAnswered(err error) bool {
	var gw *GatewayError
	return errors.As(err, &gw)
}

// AnswerText is the code and message of a verified answer, else the error's text: what a
// failure_reason or a log shows.
func AnswerText(err error) string {
	var gw *GatewayError
	if errors.As(err, &gw) {
		return gw.Code + " " + gw.Msg
	}
	return err.Error()
}
