#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Unbuffered writes to stdout and stderr, so `ledger tail --follow` output shows up at once even
/// through a pipe, and the two streams never interleave mid-line.
enum Console {
    /// Writes `text` to standard output, adding a newline if it lacks one.
    static func out(_ text: String) { write(line(text), to: 1) }

    /// Writes `text` to standard error, adding a newline if it lacks one.
    /// Control characters but newlines are escaped as in tables: a message may quote stored data
    /// (an id, a daemon's reply), which must not send escape sequences to the terminal.
    static func error(_ text: String) { write(line(TableFormatter.printable(text, keepingNewlines: true)), to: 2) }

    /// The environment variable's value, or nil when unset.
    static func environment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }

    /// `strerror(3)` as text.
    static func describe(errno code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }

    /// Everything on standard input (for `tally call METHOD -`).
    static func readStandardInput() -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress!, $0.count) }
            if count > 0 {
                bytes += chunk[0..<count]
            } else if count == 0 || errno != EINTR {
                return bytes
            }
        }
    }

    /// Sleeps for `milliseconds`, resuming after signals.
    static func sleep(milliseconds: Int) {
        var request = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR {
            request = remaining
        }
    }

    /// Standard output cannot be written: output that is lost must not end in success. A reader
    /// that went away (`| head`, with SIGPIPE ignored) ends the command as SIGPIPE would (status
    /// 141, silently); any other failure (a full disk) is said on stderr, status 74 (EX_IOERR).
    private static func outputFailed(errno code: Int32) -> Never {
        if code == EPIPE { exit(141) }
        error("tally: cannot write the output: \(describe(errno: code))")
        exit(74)
    }

    private static func line(_ text: String) -> [UInt8] {
        var bytes = Array(text.utf8)
        if bytes.last != UInt8(ascii: "\n") { bytes.append(UInt8(ascii: "\n")) }
        return bytes
    }

    private static func write(_ bytes: [UInt8], to descriptor: Int32) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                #if canImport(Darwin)
                Darwin.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                #elseif canImport(Glibc)
                Glibc.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                #else
                Musl.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                #endif
            }
            if written < 0 {
                if errno == EINTR { continue }
                guard descriptor == 1 else { return }  // stderr gone: nowhere left to say anything
                outputFailed(errno: errno)
            }
            offset += written
        }
    }
}
