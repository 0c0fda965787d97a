#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Lines of a file or of standard input, read in chunks, for `tally events send`.
///
/// Lines end at `\n`; a trailing `\r` is dropped, and so is a UTF-8 byte-order mark before the first
/// line. The last line needs no newline.
final class NDJSONReader {
    static let chunkBytes = 256 * 1024

    private let descriptor: Int32
    private let ownsDescriptor: Bool
    private var buffer: [UInt8] = []
    private var start = 0
    private var atEnd = false
    private var chunk = [UInt8](repeating: 0, count: NDJSONReader.chunkBytes)
    /// The number of the line last returned (1-based).
    private(set) var lineNumber = 0
    /// Bytes consumed so far, for progress.
    private(set) var bytesRead = 0
    /// Bytes in the file when it is a regular file, else 0.
    let totalBytes: Int

    /// Opens `path`, or standard input for `-`.
    ///
    /// - Throws: a message with `strerror` when the file cannot be opened.
    init(path: String) throws(NDJSONReaderError) {
        if path == "-" {
            descriptor = 0
            ownsDescriptor = false
        } else {
            descriptor = open(path, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { throw NDJSONReaderError(message: "cannot open \(path): \(Console.describe(errno: errno))") }
            ownsDescriptor = true
        }
        var info = stat()
        if fstat(descriptor, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
            totalBytes = Int(info.st_size)
        } else {
            totalBytes = 0
        }
    }

    deinit {
        if ownsDescriptor { _ = close(descriptor) }
    }

    /// The next line without its terminator, or nil at the end of the input.
    func nextLine() throws(NDJSONReaderError) -> ArraySlice<UInt8>? {
        var scanned = 0  // bytes after `start` known to hold no newline; `fill` may move `start`
        while true {
            if let newline = buffer[(start + scanned)...].firstIndex(of: UInt8(ascii: "\n")) {
                return take(upTo: newline, skipping: 1)
            }
            scanned = buffer.count - start
            if atEnd {
                guard start < buffer.count else { return nil }
                return take(upTo: buffer.count, skipping: 0)
            }
            try fill()
        }
    }

    private func take(upTo end: Int, skipping: Int) -> ArraySlice<UInt8> {
        var line = buffer[start..<end]
        bytesRead += line.count + skipping
        start = end + skipping
        lineNumber += 1
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if lineNumber == 1, line.starts(with: [0xEF, 0xBB, 0xBF]) { line = line.dropFirst(3) }
        return line
    }

    private func fill() throws(NDJSONReaderError) {
        // Drop what has been returned before growing the buffer.
        if start > 0, start >= buffer.count / 2 {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress!, $0.count) }
            if count > 0 {
                buffer += chunk[0..<count]
                return
            }
            if count == 0 {
                atEnd = true
                return
            }
            if errno != EINTR { throw NDJSONReaderError(message: "read failed: \(Console.describe(errno: errno))") }
        }
    }
}

struct NDJSONReaderError: Error {
    var message: String
}
