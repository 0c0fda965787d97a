// The one header Swift sees of RocksDB: Debian's librocksdb-dev C API.
#include <rocksdb/c.h>
