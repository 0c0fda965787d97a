#if canImport(Glibc)
import Glibc
#endif

/// Standard input, output and error as the process found them.
public enum StandardStreams {
    /// Opens /dev/null on each of descriptors 0, 1 and 2 that was closed at start, and returns
    /// those. Otherwise the next file the process opens (the daemon's socket, a database file)
    /// would get that number, and whatever is written "to standard output" would go into it.
    public static func reopenClosed() -> Set<Int32> {
        var closed: Set<Int32> = []
        for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            closed.insert(descriptor)
            let null = open("/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY)
            if null >= 0, null != descriptor {
                dup2(null, descriptor)
                close(null)
            }
        }
        return closed
    }
}
