#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Thin spellings over the C socket API, so TallyConnection reads the same on Linux and Darwin.

/// `strerror(3)` as a Swift string.
func errorDescription(_ code: Int32) -> String {
    guard let text = strerror(code) else { return "errno \(code)" }
    return String(cString: text)
}

enum Posix {
    #if canImport(Glibc) || canImport(Musl)
    static let streamType = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    /// A peer that went away must not kill the process with SIGPIPE: report EPIPE instead.
    static let sendFlags = Int32(MSG_NOSIGNAL)
    #else
    static let streamType = SOCK_STREAM
    static let sendFlags: Int32 = 0
    #endif
    static let dontWait = Int32(MSG_DONTWAIT)

    /// `close(2)`; the name differs so TallyConnection's own `close()` does not shadow it.
    static func closeDescriptor(_ fd: Int32) {
        _ = close(fd)
    }
}
