/// A command the ledger refused by its rules. Stable code and reason; nothing was appended.
public struct Rejection: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Int, Sendable, CaseIterable {
        case customerNotFound = 1001
        case featureNotFound = 1002
        case currencyNotFound = 1003
        case grantNotFound = 1004
        case planNotFound = 1005
        case insufficientCredits = 1010
        case idempotencyConflict = 1011
        case grantNotActive = 1012
        case invalidState = 1013
        /// A param the ledger's state shows to be unusable (answered as -32602 naming `field`).
        case invalidParams = -32602

        /// The stable `data.reason` string of the contract.
        public var reason: String {
            switch self {
            case .customerNotFound: "CUSTOMER_NOT_FOUND"
            case .featureNotFound: "FEATURE_NOT_FOUND"
            case .currencyNotFound: "CURRENCY_NOT_FOUND"
            case .grantNotFound: "GRANT_NOT_FOUND"
            case .planNotFound: "PLAN_NOT_FOUND"
            case .insufficientCredits: "INSUFFICIENT_CREDITS"
            case .idempotencyConflict: "IDEMPOTENCY_CONFLICT"
            case .grantNotActive: "GRANT_NOT_ACTIVE"
            case .invalidState: "INVALID_STATE"
            case .invalidParams: "INVALID_PARAMS"
            }
        }
    }

    public let code: Code
    public let message: String
    /// For `.invalidParams`: the offending field.
    public let field: String?

    public init(_ code: Code, _ message: String, field: String? = nil) {
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String { "\(code.reason): \(message)" }
}
