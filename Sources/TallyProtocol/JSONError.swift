/// Why a JSON text was rejected, and where.
public struct JSONError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case invalidUTF8
        case unexpectedCharacter
        case unexpectedEnd
        case depthExceeded
        case duplicateKey
        case trailingData
        case invalidEscape
        case invalidNumber
        case controlCharacterInString
        case invalidSurrogate
        case empty
    }

    public let kind: Kind
    /// Byte offset (0-based) where the problem was found.
    public let offset: Int
    /// Kind-specific detail: the duplicate key, the depth limit, the offending byte or escape,
    /// what was expected.
    public let detail: String

    public init(kind: Kind, offset: Int, detail: String = "") {
        self.kind = kind
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        let at = "at byte \(offset)"
        switch kind {
        case .invalidUTF8:
            return detail.isEmpty ? "invalid UTF-8 \(at)" : "invalid UTF-8 \(at) (\(detail))"
        case .unexpectedCharacter:
            return detail.isEmpty ? "unexpected character \(at)" : "unexpected character \(at): \(detail)"
        case .unexpectedEnd:
            return detail.isEmpty ? "unexpected end of input \(at)" : "unexpected end of input \(at): \(detail)"
        case .depthExceeded:
            return "nesting deeper than \(detail) levels \(at)"
        case .duplicateKey:
            return "duplicate key \(JSONValue.string(detail).jsonText) in object \(at)"
        case .trailingData:
            return "unexpected data after the JSON value \(at)"
        case .invalidEscape:
            return "invalid escape sequence \(detail) in string \(at)"
        case .invalidNumber:
            return detail.isEmpty ? "invalid number \(at)" : "invalid number \(at): \(detail)"
        case .controlCharacterInString:
            return "unescaped control character \(detail) in string \(at)"
        case .invalidSurrogate:
            return "unpaired or mismatched surrogate escape \(detail) in string \(at)"
        case .empty:
            return "empty input: no JSON value found"
        }
    }
}
