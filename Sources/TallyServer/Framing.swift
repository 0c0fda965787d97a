import NIOCore

/// One request line, or the news that a line outgrew the frame limit.
enum Frame {
    case line(ByteBuffer)
    case oversized
    /// The input ended after this many bytes of a line without its "\n".
    case unterminated(bytes: Int)

    /// A line of only spaces, tabs and CRs (or none): a keep-alive, not a request.
    static func isBlank(_ bytes: ByteBufferView) -> Bool {
        bytes.allSatisfy { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") || $0 == UInt8(ascii: "\r") }
    }
}

/// Splits the stream at "\n" (a trailing "\r" is dropped), capping a line at `frameBytesMax`.
/// Bytes after the last "\n" at end of input (`printf '{…}' | socat - UNIX-CONNECT:…`, or a client
/// that hangs up mid-line) are not a request: only a newline completes one. They are reported as
/// `.unterminated`, so a client that still reads is told why nothing ran.
struct LineFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame

    let frameBytesMax: Int
    /// Bytes at the front of the buffer already searched for "\n", so each byte is looked at once.
    private var searched = 0
    /// After an oversized line nothing more is read: the connection is closing.
    private var discarding = false

    init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if discarding {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        let view = buffer.readableBytesView
        let start = view.startIndex + searched
        guard let newline = view[start...].firstIndex(of: UInt8(ascii: "\n")) else {
            searched = view.count
            // A trailing "\r" may be the first half of a CRLF whose "\n" is still in transit.
            let pending = view.last == UInt8(ascii: "\r") ? view.count - 1 : view.count
            if pending > frameBytesMax {
                discarding = true
                buffer.moveReaderIndex(to: buffer.writerIndex)
                context.fireChannelRead(wrapInboundOut(.oversized))
            }
            return .needMoreData
        }
        searched = 0
        var length = newline - view.startIndex
        let carriageReturn = length > 0 && view[newline - 1] == UInt8(ascii: "\r")
        if carriageReturn { length -= 1 }
        if length > frameBytesMax {
            discarding = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.oversized))
            return .needMoreData
        }
        let line = buffer.readSlice(length: length)!
        buffer.moveReaderIndex(forwardBy: carriageReturn ? 2 : 1)
        context.fireChannelRead(wrapInboundOut(.line(line)))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A blank tail is a keep-alive without its newline: nothing to report.
        if !discarding, seenEOF, !Frame.isBlank(buffer.readableBytesView) {
            context.fireChannelRead(wrapInboundOut(.unterminated(bytes: buffer.readableBytes)))
        }
        buffer.moveReaderIndex(to: buffer.writerIndex)
        return .needMoreData
    }
}
