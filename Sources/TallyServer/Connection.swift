import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import TallyProtocol

/// Open connections: the count for the cap and for getStatus, and the channels to close at shutdown.
final class ConnectionRegistry: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    var count: Int { channels.withLockedValue { $0.count } }

    /// Registers the channel unless `max` are open already.
    func add(_ channel: any Channel, max: Int) -> Bool {
        channels.withLockedValue { open in
            guard open.count < max else { return false }
            open[ObjectIdentifier(channel)] = channel
            return true
        }
    }

    func remove(_ channel: any Channel) {
        _ = channels.withLockedValue { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    var all: [any Channel] { channels.withLockedValue { Array($0.values) } }
}

/// Event sent through a connection's pipeline at shutdown: finish what is in flight, then close.
struct DrainAndClose {}

/// One client connection: hands each line to the dispatcher, and writes the replies back in
/// request order however they complete. Stops reading while too many lines are in flight.
final class ConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = Never
    typealias OutboundOut = ByteBuffer

    private enum Slot {
        case waiting
        case done([UInt8]?)
    }

    private let dispatcher: Dispatcher
    private let registry: ConnectionRegistry
    private let logger: Logger
    /// Replies not yet written, in request order; `firstSlot` is the number of `slots.first`.
    private var slots: [Slot] = []
    private var slotsHead = 0
    private var firstSlot = 0
    private var nextSlot = 0
    private var readPending = false
    /// A long line is being handled off the event loop, or a read runs off it: later lines wait
    /// in `held` (and nothing more is read) until it has been handed on, or has been answered.
    private var holding = false
    private var held: [Frame] = []
    /// The slot of the read off the event loop that `holding` waits for.
    private var holdingFor: Int?
    /// The held lines wait for the client to read what was written (the channel is not writable).
    private var releaseWhenWritable = false
    /// Close once every reply owed is written (after a half-close, an oversized line or at shutdown).
    private var closeWhenDrained = false
    /// After an oversized line the stream cannot be framed again: later input is dropped.
    private var ignoringInput = false
    /// The daemon is shutting down: lines still arriving are answered (commands get 2001) until
    /// the client has been quiet for `shutdownQuietTime`, or for at most `shutdownReadTime`, then
    /// the connection closes.
    private var shuttingDown = false
    /// `shutdownReadTime` has passed since the shutdown began: nothing more is read.
    private var shutdownReadingEnded = false
    private var inputClosed = false
    /// Lines received so far, to tell whether any came in while waiting to close.
    private var linesReceived = 0
    private var closing = false
    private var registered = false
    private var session: Session?

    init(dispatcher: Dispatcher, registry: ConnectionRegistry, logger: Logger) {
        self.dispatcher = dispatcher
        self.registry = registry
        self.logger = logger
    }

    private var inFlight: Int { nextSlot - firstSlot }

    func channelActive(context: ChannelHandlerContext) {
        guard registry.add(context.channel, max: dispatcher.limits.connectionsMax) else {
            let reply = Dispatcher.encode(RPCResponse.failure(id: .null, error: .overloaded("too many connections (limit \(dispatcher.limits.connectionsMax)); retry later")))
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(bytes: reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        registered = true
        CloseOnExec.markSockets()
        let eventLoop = context.eventLoop
        session = Session { work in eventLoop.execute(work) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if registered { registry.remove(context.channel) }
        held.removeAll()  // never handed on: no one is left to answer
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !ignoringInput, !closing else { return }
        let frame = unwrapInboundIn(data)
        linesReceived += 1
        // A line read while the replies wait unwritten (the client does not read them) waits too,
        // until the channel is writable: when the peer closes, NIO delivers all the socket still
        // holds whatever `read` allowed, and a client that pipelined thousands of reads and left
        // had them all computed for no one, holding up the event loop (found in review).
        guard !holding, held.isEmpty, context.channel.isWritable else {
            // After an oversized line nothing more is taken, as below.
            if case .oversized = held.last {} else { held.append(frame) }
            if !holding { releaseHeldWhenWritable(context: context) }
            return
        }
        process(frame, context: context)
    }

    private func process(_ frame: Frame, context: ChannelHandlerContext) {
        switch frame {
        case .oversized:
            let failure = RPCFailure.parseError("the line is longer than the limit of \(dispatcher.limits.frameBytesMax) bytes; the connection is closed")
            append(.done(Dispatcher.encode(RPCResponse.failure(id: .null, error: failure))))
            closeWhenDrained = true
            ignoringInput = true
            flushDone(context: context)
        case .unterminated(let bytes):
            let failure = RPCFailure.parseError("the input ended \(bytes) bytes into a line without its \"\\n\"; only a newline completes a request, so that one was not run")
            append(.done(Dispatcher.encode(RPCResponse.failure(id: .null, error: failure))))
            flushDone(context: context)
        case .line(let buffer):
            guard !Frame.isBlank(buffer.readableBytesView) else {
                // A keep-alive: no reply. One arriving while the connection waits to close
                // (at shutdown) must not leave it waiting for a reply that never comes.
                if closeWhenDrained, inFlight == 0, held.isEmpty { closeWhenQuiet(context: context) }
                return
            }
            dispatch(buffer, context: context)
        }
    }

    /// Hands one line to the dispatcher. A long line (thousands of events or records: milliseconds
    /// of decoding) is handled off the event loop, so the loop's other connections are not held up;
    /// this connection's later lines wait until it has been handed on (submitted in order).
    private func dispatch(_ buffer: ByteBuffer, context: ChannelHandlerContext) {
        guard let session else { return }
        let slot = nextSlot
        append(.waiting)
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let reply: Dispatcher.Reply = { reply in
            if eventLoop.inEventLoop {
                loopBound.value.complete(slot, reply, context: contextBound.value)
            } else {
                eventLoop.execute { loopBound.value.complete(slot, reply, context: contextBound.value) }
            }
        }
        guard buffer.readableBytes > Self.offloadedLineBytes else {
            let readsOffLoop = buffer.withUnsafeReadableBytes { dispatcher.handle(line: $0, session: session, reply: reply) }
            if readsOffLoop { holdUntilAnswered(slot, context: context) }
            return
        }
        holding = true
        let (handler, line) = (self.dispatcher, Array(buffer.readableBytesView))
        DispatchQueue.global().async {
            let readsOffLoop = line.withUnsafeBytes { handler.handle(line: $0, session: session, reply: reply) }
            eventLoop.execute {
                let connection = loopBound.value
                if readsOffLoop {
                    connection.holdUntilAnswered(slot, context: contextBound.value)
                } else {
                    connection.releaseHeld(context: contextBound.value)
                }
            }
        }
    }

    /// A line whose reads run off the event loop (their cost grows with the data) holds the
    /// connection's later lines until it is answered, and then until the client has read enough
    /// that the channel is writable again: a client that pipelines expensive reads and does not
    /// read the replies makes the daemon compute and hold about `pendingReplyBytesMax` of them,
    /// not the replies of every line it sent.
    private func holdUntilAnswered(_ slot: Int, context: ChannelHandlerContext) {
        guard !isAnswered(slot) else {
            // Answered already (a fast read, or a long line whose reply came before this): the
            // held lines of a long line go on now; a short line held nothing.
            if holding { releaseHeldWhenWritable(context: context) }
            return
        }
        holding = true
        holdingFor = slot
    }

    private func isAnswered(_ slot: Int) -> Bool {
        guard slot >= firstSlot else { return true }  // written already
        if case .done = slots[slotsHead + slot - firstSlot] { return true }
        return false
    }

    private func releaseHeldWhenWritable(context: ChannelHandlerContext) {
        guard context.channel.isWritable else {
            releaseWhenWritable = true
            return
        }
        releaseHeld(context: context)
    }

    /// Lines longer than this are decoded off the event loop.
    static let offloadedLineBytes = 64 * 1024

    private func releaseHeld(context: ChannelHandlerContext) {
        holding = false
        holdingFor = nil
        releaseWhenWritable = false
        while !holding, !held.isEmpty, context.channel.isWritable {
            process(held.removeFirst(), context: context)
        }
        if !holding, !held.isEmpty { releaseWhenWritable = true }
        resumeReading(context: context)
    }

    private func append(_ slot: Slot) {
        slots.append(slot)
        nextSlot += 1
    }

    private func complete(_ slot: Int, _ reply: [UInt8]?, context: ChannelHandlerContext) {
        slots[slotsHead + slot - firstSlot] = .done(reply)
        flushDone(context: context)
        if holdingFor == slot {
            holdingFor = nil
            releaseHeldWhenWritable(context: context)
        }
    }

    /// Writes every finished reply at the head of the queue, in order.
    private func flushDone(context: ChannelHandlerContext) {
        var wrote = false
        while slotsHead < slots.count, case .done(let reply) = slots[slotsHead] {
            slotsHead += 1
            firstSlot += 1
            if let reply {
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: reply)), promise: nil)
                wrote = true
            }
        }
        if slotsHead == slots.count {
            slots.removeAll(keepingCapacity: true)
            slotsHead = 0
        }
        if wrote { context.flush() }
        if inFlight == 0, held.isEmpty, closeWhenDrained {
            closeWhenQuiet(context: context)
            return
        }
        resumeReading(context: context)
    }

    /// With nothing in flight: closes once the replies are written. At shutdown, while the client
    /// may still be sending, it first waits until no line has come in for `shutdownQuietTime`
    /// (each that does is answered first); the daemon's 5-second drain bounds the wait.
    private func closeWhenQuiet(context: ChannelHandlerContext) {
        guard shuttingDown, !inputClosed, !ignoringInput, !shutdownReadingEnded else { return closeAfterWrites(context: context) }
        resumeReading(context: context)
        let seen = linesReceived
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.eventLoop.scheduleTask(in: Self.shutdownQuietTime) {
            let handler = loopBound.value
            guard handler.linesReceived == seen, handler.inFlight == 0, handler.held.isEmpty else { return }  // a later line's reply calls again
            handler.closeAfterWrites(context: contextBound.value)
        }
    }

    /// How long a client must send nothing during shutdown before its connection closes.
    static let shutdownQuietTime = TimeAmount.milliseconds(50)
    /// How long a connection is still read after the shutdown began, however busy its client is
    /// (one polling every few milliseconds would otherwise hold the shutdown to its deadline).
    static let shutdownReadTime = TimeAmount.milliseconds(500)

    /// Closes once NIO has handed every reply written so far to the kernel: writes complete in
    /// order, so an empty write behind them completes after the last (and no reply needs a promise
    /// of its own on the hot path). A client that stops reading keeps it open until the idle
    /// timeout or the shutdown deadline closes it outright.
    private func closeAfterWrites(context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(channel.allocator.buffer(capacity: 0))).whenComplete { _ in channel.close(promise: nil) }
    }

    private func mayRead(context: ChannelHandlerContext) -> Bool {
        // At shutdown the connection is still read, so lines already sent get an answer (2001).
        inFlight < dispatcher.limits.pipelinedLinesMax && context.channel.isWritable && (!closeWhenDrained || (shuttingDown && !shutdownReadingEnded))
            && !holding && !ignoringInput && !inputClosed && !closing
    }

    private func resumeReading(context: ChannelHandlerContext) {
        if readPending, mayRead(context: context) {
            readPending = false
            context.read()
        }
    }

    // Back-pressure: hold reads while too many lines wait for replies, or while the replies
    // already written wait for a client that does not read them (the channel is not writable
    // past `pendingReplyBytesMax`), so a client can make the server hold only so much for it.
    func read(context: ChannelHandlerContext) {
        if mayRead(context: context) {
            context.read()
        } else {
            readPending = true
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if releaseWhenWritable, context.channel.isWritable { releaseHeld(context: context) }
        resumeReading(context: context)
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as ChannelEvent where event == .inputClosed:
            // The client half-closed (socat does at the end of its input): answer what it sent, then close.
            closeWhenDrained = true
            inputClosed = true
            if inFlight == 0, held.isEmpty { closeWhenQuiet(context: context) }
        case is IdleStateHandler.IdleStateEvent:
            if inFlight == 0 {
                logger.debug("closing idle connection")
                context.close(promise: nil)
            }
        case is DrainAndClose:
            closeWhenDrained = true
            shuttingDown = true
            let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
            let contextBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: Self.shutdownReadTime) {
                let handler = loopBound.value
                handler.shutdownReadingEnded = true
                if handler.inFlight == 0, handler.held.isEmpty { handler.closeAfterWrites(context: contextBound.value) }
            }
            if inFlight == 0, held.isEmpty { closeWhenQuiet(context: context) } else { resumeReading(context: context) }
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }
}
