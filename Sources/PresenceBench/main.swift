// presence-bench: measurements outside the test suite.
//   presence-bench core REDIS_URL [EVENTS] [USERS]
//   presence-bench soak REDIS_URL [SECONDS] [NODES] [SOCKETS_PER_NODE] [EVENTS_PER_SECOND]
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "core" where arguments.count >= 2: try await coreBenchmark(Array(arguments.dropFirst()))
case "soak" where arguments.count >= 2: try await soak(Array(arguments.dropFirst()))
default:
    print("usage: presence-bench core REDIS_URL [EVENTS] [USERS] | soak REDIS_URL [SECONDS] [NODES] [SOCKETS] [EVENTS_PER_SECOND]")
    exit(2)
}
