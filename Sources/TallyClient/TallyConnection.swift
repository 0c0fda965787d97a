#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
public import TallyProtocol

/// A blocking connection to `tallyd` over its Unix domain socket, speaking JSON-RPC 2.0 as one
/// message per line.
///
/// Not thread-safe: use one connection per thread. After a transport failure in ``call(_:_:)`` or
/// ``callPipelined(_:)`` the connection closes itself, because a late response would otherwise be
/// read as the answer to the next request.
public final class TallyConnection {
    /// The path this connection was opened on.
    public let socketPath: String
    /// Seconds a single read or write may block before it fails with ``ClientError/io(_:)``.
    public let timeoutSeconds: Int
    private let timeoutMillis: Int32

    /// A response line longer than this is taken as a broken peer rather than buffered forever.
    static let responseBytesMax = 512 * 1024 * 1024
    /// Deeper than the daemon accepts in params, since results echo params inside the envelope.
    static let responseDepthMax = 512
    static let readChunkBytes = 64 * 1024
    static let newline = UInt8(ascii: "\n")

    private var fd: Int32
    private var nextId = 1
    // Buffered reader: bytes received but not yet returned, starting at `readStart`.
    private var readBuffer: [UInt8] = []
    private var readStart = 0
    private var peerClosed = false
    private var chunk = [UInt8](repeating: 0, count: TallyConnection.readChunkBytes)

    /// Connects to the daemon's socket.
    ///
    /// - Throws: ``ClientError/connectFailed(path:errno:hint:)`` when there is no daemon at
    ///   `socketPath`, it refuses, the path is too long, or the caller may not enter its directory;
    ///   ``ClientError/io(_:)`` when no socket can be created.
    public init(socketPath: String, timeoutSeconds: Int = 30) throws(ClientError) {
        precondition(timeoutSeconds > 0, "timeoutSeconds must be positive")
        self.socketPath = socketPath
        self.timeoutSeconds = timeoutSeconds
        // poll(2) takes milliseconds in an Int32 (about 24.8 days); longer waits are that long.
        timeoutMillis = Int32(clamping: timeoutSeconds.multipliedReportingOverflow(by: 1000).overflow ? Int.max : timeoutSeconds * 1000)

        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let pathCapacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < pathCapacity else {
            throw .connectFailed(
                path: socketPath, errno: ENAMETOOLONG,
                hint: "a Unix socket path must be 1 to \(pathCapacity - 1) bytes; use a shorter or relative path")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }

        let socketFD = socket(AF_UNIX, Posix.streamType, 0)
        guard socketFD >= 0 else { throw .io("socket(AF_UNIX): \(errorDescription(errno))") }
        fd = socketFD

        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        #if canImport(Darwin)
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, socklen_t(MemoryLayout<Int32>.size))
        #endif

        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + pathBytes.count + 1)
        var result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, length) }
        }
        var failure = result == 0 ? 0 : errno
        if failure == EINTR {
            // The attempt goes on in the kernel after a signal; wait for it rather than retrying.
            failure = Self.awaitConnect(fd, timeoutMillis: Int(timeoutMillis))
            result = failure == 0 ? 0 : -1
        }
        if result != 0 {
            Posix.closeDescriptor(fd)
            fd = -1
            throw .connectFailed(path: socketPath, errno: failure, hint: Self.hint(forConnectErrno: failure, path: socketPath))
        }
    }

    deinit { close() }

    /// Closes the socket. Later calls throw ``ClientError/closed``. Calling it twice is harmless.
    public func close() {
        if fd >= 0 {
            Posix.closeDescriptor(fd)
            fd = -1
        }
    }

    // MARK: - JSON-RPC

    /// Sends one request and waits for its response.
    ///
    /// - Returns: the `result` member of the response.
    /// - Throws: ``RPCError`` when the daemon answers with an error; ``ClientError`` when the
    ///   transport fails or the answer is not a response to this request (the connection is then
    ///   closed).
    public func call(_ method: String, _ params: JSONObject = [:]) throws -> JSONValue {
        let id = nextId
        nextId += 1
        let outcome: Result<JSONValue, RPCError>
        do throws(ClientError) {
            do {
                // A large request may be refused before it is fully sent; keep reading meanwhile
                // so that refusal is not lost to EPIPE.
                let request = Self.requestLine(id: id, method: method, params: params)
                try writeAll(request, readingMeanwhile: request.count > Self.readChunkBytes)
            } catch .closed {
                // The daemon hung up mid-request; an answer it sent first is still readable.
            }
            guard let line = try readLine() else { throw ClientError.closed }
            let response = try Self.decodeResponse(line)
            if response.id != .number(String(id)) {
                // An error with id null is the daemon refusing the frame itself (too long, unparsable).
                guard response.id.isNull, case .failure = response.result else {
                    throw ClientError.protocolViolation(
                        "expected the response to request \(id), got id \(response.id.jsonText)")
                }
            }
            outcome = response.result
        } catch {
            close()
            throw error
        }
        return try outcome.get()
    }

    /// Sends all requests back to back (pipelined, ids 1…n) on this connection, then collects
    /// their n responses, matched by id.
    ///
    /// Responses are read while the requests are still being written, so a long pipeline cannot
    /// deadlock on full socket buffers. If the daemon answers one error with id null (it refused a
    /// frame) that error stands for every request still unanswered.
    ///
    /// - Returns: one result per request, in request order.
    /// - Throws: ``ClientError`` when the transport fails or a response does not match a request;
    ///   the connection is then closed.
    public func callPipelined(
        _ requests: [(method: String, params: JSONObject)]
    ) throws(ClientError) -> [Result<JSONValue, RPCError>] {
        guard !requests.isEmpty else { return [] }
        do throws(ClientError) {
            var payload: [UInt8] = []
            for (index, request) in requests.enumerated() {
                payload += Self.requestLine(id: index + 1, method: request.method, params: request.params)
            }
            do {
                try writeAll(payload, readingMeanwhile: true)
            } catch .closed {
                // The daemon hung up mid-pipeline; what it answered before that is still buffered.
            }

            var results = [Result<JSONValue, RPCError>?](repeating: nil, count: requests.count)
            var answered = 0
            while answered < requests.count {
                guard let line = try readLine() else { throw ClientError.closed }
                let response = try Self.decodeResponse(line)
                if response.id.isNull, case .failure(let error) = response.result {
                    for index in results.indices where results[index] == nil { results[index] = .failure(error) }
                    break
                }
                guard let text = response.id.numberText, let id = Int(text), (1...requests.count).contains(id),
                    results[id - 1] == nil
                else {
                    throw ClientError.protocolViolation("unexpected response id \(response.id.jsonText) in a pipeline")
                }
                results[id - 1] = response.result
                answered += 1
            }
            return results.map { $0! }
        } catch {
            close()
            throw error
        }
    }

    // MARK: - Raw lines

    /// Sends `bytes` as they are, appending `"\n"` if they do not end with one.
    ///
    /// If the daemon answers and hangs up before the line is fully sent (a line over its frame
    /// limit), this returns normally so that ``readLine()`` can return that answer, then nil.
    ///
    /// - Throws: ``ClientError/closed`` if the daemon hung up without answering,
    ///   ``ClientError/io(_:)`` on other failures.
    public func sendLine(_ bytes: [UInt8]) throws(ClientError) {
        var line = bytes
        if line.last != Self.newline { line.append(Self.newline) }
        do {
            try writeAll(line, readingMeanwhile: line.count > Self.readChunkBytes)
        } catch .closed {
            // Whatever the daemon wrote before hanging up is already queued on our side.
            while !peerClosed {
                let before = readBuffer.count
                try receive(flags: Posix.dontWait)
                if readBuffer.count == before { break }
            }
            if readStart == readBuffer.count { throw .closed }
        }
    }

    /// Reads one line (without its `"\n"`); nil at end of stream.
    ///
    /// - Throws: ``ClientError/io(_:)`` on a read error or timeout;
    ///   ``ClientError/protocolViolation(_:)`` if the stream ends inside a line or a line exceeds
    ///   512 MiB.
    public func readLine() throws(ClientError) -> [UInt8]? {
        guard fd >= 0 else { throw .closed }
        var scanFrom = readStart
        while true {
            if let newlineIndex = readBuffer[scanFrom...].firstIndex(of: Self.newline) {
                let line = Array(readBuffer[readStart..<newlineIndex])
                readStart = newlineIndex + 1
                compactReadBuffer()
                return line
            }
            scanFrom = readBuffer.count
            if peerClosed {
                if readStart == readBuffer.count { return nil }
                throw .protocolViolation("the connection closed in the middle of a line")
            }
            if readBuffer.count - readStart > Self.responseBytesMax {
                throw .protocolViolation("a response line is longer than \(Self.responseBytesMax) bytes")
            }
            try receive(flags: 0)
        }
    }

    // MARK: - Internals

    static func requestLine(id: Int, method: String, params: JSONObject) -> [UInt8] {
        let request: JSONValue = .object([
            "jsonrpc": "2.0", "id": .number(String(id)), "method": .string(method), "params": .object(params),
        ])
        return request.serialized() + [newline]
    }

    /// Splits a response line into its id and outcome.
    static func decodeResponse(_ line: [UInt8]) throws(ClientError) -> (id: JSONValue, result: Result<JSONValue, RPCError>) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(line, depthMax: Self.responseDepthMax)
        } catch {
            throw .protocolViolation("unparsable response (\(error)): \(preview(line))")
        }
        guard let object = value.objectValue else {
            throw .protocolViolation("expected a response object, got \(value.typeName): \(preview(line))")
        }
        let id = object["id"] ?? .null
        if let error = object["error"] {
            guard let errorObject = error.objectValue, let codeText = errorObject["code"]?.numberText,
                let code = Int(codeText)
            else {
                throw .protocolViolation("malformed error object: \(preview(line))")
            }
            let message = errorObject["message"]?.stringValue ?? ""
            return (id, .failure(RPCError(code: code, message: message, data: errorObject["data"])))
        }
        guard let result = object["result"] else {
            throw .protocolViolation("a response with neither result nor error: \(preview(line))")
        }
        return (id, .success(result))
    }

    private static func preview(_ line: [UInt8]) -> String {
        let text = String(decoding: line.prefix(200), as: UTF8.self)
        return line.count > 200 ? text + "…" : text
    }

    private func timeoutMessage(_ what: String) -> String {
        "timed out after \(timeoutSeconds) s \(what) (socket \(socketPath))"
    }

    /// Writes every byte, resuming after EINTR and partial writes. With `readingMeanwhile` it
    /// also drains incoming responses into the read buffer whenever the socket is not writable.
    private func writeAll(_ bytes: [UInt8], readingMeanwhile: Bool) throws(ClientError) {
        guard fd >= 0 else { throw .closed }
        var offset = 0
        while offset < bytes.count {
            var flags = Posix.sendFlags
            if readingMeanwhile {
                var events = Int16(POLLOUT)
                if !peerClosed { events |= Int16(POLLIN) }
                var descriptor = pollfd(fd: fd, events: events, revents: 0)
                let ready = poll(&descriptor, 1, timeoutMillis)
                if ready < 0 {
                    if errno == EINTR { continue }
                    throw .io("poll: \(errorDescription(errno))")
                }
                if ready == 0 { throw .io(timeoutMessage("sending requests")) }
                if descriptor.revents & Int16(POLLIN) != 0 {
                    try receive(flags: Posix.dontWait)
                }
                if descriptor.revents & Int16(POLLOUT | POLLERR | POLLHUP) == 0 { continue }
                flags |= Posix.dontWait
            }
            let written = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, flags)
            }
            if written < 0 {
                switch errno {
                case EINTR: continue
                case EAGAIN, EWOULDBLOCK:
                    if readingMeanwhile { continue }
                    throw .io(timeoutMessage("sending"))
                case EPIPE, ECONNRESET: throw .closed
                default: throw .io("send: \(errorDescription(errno))")
                }
            }
            offset += written
        }
    }

    /// One `recv` into the read buffer. Sets `peerClosed` at end of stream.
    private func receive(flags: Int32) throws(ClientError) {
        while true {
            let count = chunk.withUnsafeMutableBytes { raw in recv(fd, raw.baseAddress!, raw.count, flags) }
            if count > 0 {
                readBuffer.append(contentsOf: chunk[0..<count])
                return
            }
            if count == 0 {
                peerClosed = true
                return
            }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK:
                if flags & Posix.dontWait != 0 { return }
                throw .io(timeoutMessage("waiting for a response"))
            case ECONNRESET:
                peerClosed = true
                return
            default: throw .io("recv: \(errorDescription(errno))")
            }
        }
    }

    private func compactReadBuffer() {
        if readStart == readBuffer.count {
            readBuffer.removeAll(keepingCapacity: readBuffer.capacity <= 4 * Self.readChunkBytes)
            readStart = 0
        } else if readStart >= Self.readChunkBytes && readStart * 2 >= readBuffer.count {
            readBuffer.removeSubrange(0..<readStart)
            readStart = 0
        }
    }

    private static func awaitConnect(_ fd: Int32, timeoutMillis: Int) -> Int32 {
        var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        while true {
            let ready = poll(&descriptor, 1, Int32(clamping: timeoutMillis))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { return ready == 0 ? ETIMEDOUT : errno }
            break
        }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) != 0 { return errno }
        return failure
    }

    static func hint(forConnectErrno code: Int32, path: String? = nil) -> String {
        // Refused by something that is no socket at all: say what it is instead.
        var status = stat()
        if code == ECONNREFUSED, let path, stat(path, &status) == 0, status.st_mode & S_IFMT != S_IFSOCK {
            let kind = status.st_mode & S_IFMT == S_IFDIR ? "a directory, " : status.st_mode & S_IFMT == S_IFREG ? "a regular file, " : ""
            return "\(path) is \(kind)not a socket"
        }
        switch code {
        case ENOENT:
            return "no socket there: is tallyd running? start it with `tallyd serve`"
        case ECONNREFUSED:
            return "nothing is listening (a stale socket file?): is tallyd running? start it with `tallyd serve`"
        case EACCES, EPERM:
            return "permission denied: the socket and its directory belong to the user running tallyd"
        case ENOTDIR:
            return "a component of the path is not a directory"
        case EAGAIN, ETIMEDOUT, EINPROGRESS:
            return "tallyd did not accept the connection in time; it may be overloaded"
        default:
            return "is tallyd running? start it with `tallyd serve`"
        }
    }
}
