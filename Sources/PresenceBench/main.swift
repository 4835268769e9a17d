// PresenceBench: measurements outside the test suite, driven by scripts/bench.
//   core REDIS_URL [EVENTS] [USERS]              events/s from one PresenceNode (row 1)
//   heartbeat REDIS_URL                          Redis commands per heartbeat at 0/10k/100k sockets (row 6)
//   fleet-heartbeat REDIS_URL [ROUNDS] [RUNS] [FEW] [MANY]   Redis CPU per heartbeat at 10 and 2,000 nodes
//   memory REDIS_URL [NODES] [SOCKETS] [USERS]   used_memory per socket, ours and the bare minimum (row 5)
//   node REDIS_URL NODE_ID SOCKETS HEARTBEAT_MS TTL_MS   one node holding SOCKETS until killed (row 7)
//   restore REDIS_URL [NODES] [SOCKETS_PER_NODE] time to restore after FLUSHALL (row 8)
//   soak REDIS_URL [SECONDS] [NODES] [SOCKETS_PER_NODE] [EVENTS_PER_SECOND]
//   recovery PORT DATA_DIR [NODES] [SOCKETS_PER_NODE] [HEARTBEAT_MS]   fleet recovery after a Redis crash
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let rest = BenchArguments(Array(arguments.dropFirst()))
do {
    switch arguments.first {
    case "core" where arguments.count >= 2: try await coreBenchmark(rest)
    case "heartbeat" where arguments.count >= 2: try await heartbeatBenchmark(rest)
    case "fleet-heartbeat" where arguments.count >= 2: try await fleetHeartbeatBenchmark(rest)
    case "memory" where arguments.count >= 2: try await memoryBenchmark(rest)
    case "node" where arguments.count >= 6: try await nodeProcess(rest)
    case "restore" where arguments.count >= 2: try await restoreBenchmark(rest)
    case "soak" where arguments.count >= 2: try await soak(rest)
    case "recovery" where arguments.count >= 3: try await recoveryBenchmark(Array(arguments.dropFirst()))
    default:
        say("usage: PresenceBench core|heartbeat|fleet-heartbeat|memory|node|restore|soak|recovery REDIS_URL … (see Sources/PresenceBench/main.swift)")
        exit(2)
    }
} catch {
    say("PresenceBench: \(error)")
    exit(1)
}
