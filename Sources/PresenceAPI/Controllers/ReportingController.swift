import Foundation
import Hummingbird
import Presence

/// Reporting endpoints for nodes that speak HTTP (write token).
struct ReportingController<Context: RequestContext>: Sendable {
    let writer: PresenceWriter
    let registry: PresenceRegistry
    let heartbeatInterval: Duration

    var endpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.put(":nodeId", use: heartbeat)
        routes.delete(":nodeId", use: leave)
        routes.put(":nodeId/sockets/:socketId", use: connect)
        routes.delete(":nodeId/sockets/:socketId", use: disconnect)
        routes.post(":nodeId/events", use: events)
        return routes
    }

    /// `PUT /v1/nodes/{nodeId}`: register or heartbeat.
    @Sendable func heartbeat(_ request: Request, context: Context) async throws -> Response {
        let nodeID = try Parameter.id(context, "nodeId")
        let body = try await JSONBody.read(request, allowEmpty: true, allowedKeys: ["address", "incarnation", "meta", "userCount"])
        let address = try body.id("address")
        let requestedIncarnation = try body.id("incarnation")
        let meta = try body.meta()
        let userCount = try body.count("userCount", maximum: 1_000_000_000)
        let (result, node) = try await writer.report(nodeID: nodeID, incarnation: requestedIncarnation, address: address, meta: meta, userCount: userCount)
        return try NodeResponse(node: node, heartbeat: result, heartbeatInterval: heartbeatInterval).response(from: request, context: context)
    }

    /// `DELETE /v1/nodes/{nodeId}`: the node left; its sockets are dead at once and removed.
    @Sendable func leave(_ request: Request, context: Context) async throws -> Response {
        let nodeID = try Parameter.id(context, "nodeId")
        guard try await writer.removeNode(nodeID: nodeID) else {
            throw APIError.notFound("node_not_found", "node \(nodeID) is not registered")
        }
        return Response(status: .noContent)
    }

    /// `PUT /v1/nodes/{nodeId}/sockets/{socketId}`: the node accepted a socket.
    @Sendable func connect(_ request: Request, context: Context) async throws -> Response {
        let nodeID = try Parameter.id(context, "nodeId")
        let socketID = try Parameter.id(context, "socketId")
        let body = try await JSONBody.read(request, allowEmpty: true, allowedKeys: ["userId", "meta", "connectedAt"])
        let userID = try body.id("userId")
        let meta = try body.meta() ?? [:]
        let now = Date()
        let connectedAt = try JSONBody.connectedAt(body["connectedAt"], field: "connectedAt", now: now) ?? now
        let node = try await registeredNode(nodeID)
        let outcome = try await writer.apply(nodeID: nodeID, incarnation: node.incarnation, events: [
            .connect(socketID: socketID, userID: userID, meta: meta, connectedAt: connectedAt),
        ])[0].get()
        if outcome == .superseded {
            // Another node reported a later connection of this socket: answer with what stands.
            let current = try await registry.socket(socketID)
            return try SocketResponse(socketID: socketID, socket: current).response(from: request, context: context)
        }
        let socket = PresenceSocket(
            socketID: socketID, nodeID: nodeID, nodeIncarnation: node.incarnation, nodeAddress: node.address,
            userID: userID, connectedAt: connectedAt, meta: meta)
        var response = try SocketResponse(socketID: socketID, socket: socket, alive: node.alive).response(from: request, context: context)
        response.status = outcome == .created ? .created : .ok
        return response
    }

    /// `DELETE /v1/nodes/{nodeId}/sockets/{socketId}`: conditional on this node holding it.
    @Sendable func disconnect(_ request: Request, context: Context) async throws -> Response {
        let nodeID = try Parameter.id(context, "nodeId")
        let socketID = try Parameter.id(context, "socketId")
        let node = try await registeredNode(nodeID)
        let outcome = try await writer.apply(nodeID: nodeID, incarnation: node.incarnation, events: [
            .disconnect(socketID: socketID, userID: nil),
        ])[0].get()
        guard outcome == .removed else {
            throw APIError.notFound("socket_not_found", "node \(nodeID) does not hold socket \(socketID)")
        }
        return Response(status: .noContent)
    }

    /// `POST /v1/nodes/{nodeId}/events`: up to 1,000 connects and disconnects, applied in order.
    @Sendable func events(_ request: Request, context: Context) async throws -> Response {
        let nodeID = try Parameter.id(context, "nodeId")
        let body = try await JSONBody.read(request, allowEmpty: false, allowedKeys: ["events"])
        guard case .array(let list) = body["events"] else {
            throw APIError.badRequest("invalid_body", "events must be an array")
        }
        guard (1...1000).contains(list.count) else {
            throw APIError.badRequest("invalid_body", "events must hold 1–1000 events, got \(list.count)")
        }
        let now = Date()
        var events: [SocketEvent] = []
        events.reserveCapacity(list.count)
        for (index, item) in list.enumerated() {
            events.append(try Self.event(item, index: index, at: now))
        }
        let node = try await registeredNode(nodeID)
        let outcomes = await writer.apply(nodeID: nodeID, incarnation: node.incarnation, events: events)
        // `{"results":[{"socketId":…,"result":…},…]}`, written by hand: through `JSONEncoder` it
        // cost as much server CPU as the batch's Redis work.
        var json = JSONText(capacity: 64 + 48 * events.count)
        json.raw("{\"results\":[")
        for (index, (event, outcome)) in zip(events, outcomes).enumerated() {
            let value: SocketEventOutcome
            switch outcome {
            case .success(let outcome): value = outcome
            case .failure(let error): throw APIError.from(error)
            }
            if index > 0 { json.comma() }
            json.raw("{")
            json.key("socketId")
            json.string(event.socketID)
            json.comma()
            json.key("result")
            json.string(value.apiName)
            json.raw("}")
        }
        json.raw("]}")
        return json.response()
    }

    private static func isEventField(_ name: String) -> Bool {
        switch name {
        case "type", "socketId", "userId", "meta", "connectedAt": true
        default: false
        }
    }

    static func event(_ item: JSONValue, index: Int, at now: Date) throws -> SocketEvent {
        guard case .object(let fields) = item else {
            throw APIError.badRequest("invalid_body", "events[\(index)] must be an object")
        }
        // Sorted only when one is unknown: the message names the same one every time.
        if fields.keys.contains(where: { !isEventField($0) }), let unknown = fields.keys.sorted().first(where: { !isEventField($0) }) {
            throw APIError.badRequest("invalid_body", "events[\(index)] has unknown field '\(unknown.prefix(64))'")
        }
        guard let socketID = try JSONBody.id(fields["socketId"], field: "events[\(index)].socketId") else {
            throw APIError.badRequest("invalid_body", "events[\(index)].socketId is required")
        }
        let userID = try JSONBody.id(fields["userId"], field: "events[\(index)].userId")
        switch fields["type"] {
        case .string("connect"):
            let meta = try JSONBody.meta(fields["meta"], field: "events[\(index)].meta") ?? [:]
            let connectedAt = try JSONBody.connectedAt(fields["connectedAt"], field: "events[\(index)].connectedAt", now: now)
            return .connect(socketID: socketID, userID: userID, meta: meta, connectedAt: connectedAt ?? now)
        case .string("disconnect"):
            _ = try JSONBody.meta(fields["meta"], field: "events[\(index)].meta")  // checked, then ignored
            _ = try JSONBody.connectedAt(fields["connectedAt"], field: "events[\(index)].connectedAt", now: now)
            return .disconnect(socketID: socketID, userID: userID)
        default:
            throw APIError.badRequest("invalid_body", "events[\(index)].type must be \"connect\" or \"disconnect\"")
        }
    }

    private func registeredNode(_ nodeID: String) async throws -> PresenceNodeInfo {
        guard let node = try await registry.node(nodeID) else {
            throw APIError.notFound("node_not_found", "node \(nodeID) is not registered: PUT /v1/nodes/\(nodeID) first")
        }
        return node
    }

}

extension SocketEventOutcome {
    var apiName: String {
        switch self {
        case .created: "created"
        case .updated: "updated"
        case .superseded: "superseded"
        case .removed: "removed"
        case .notHeld: "not_held"
        }
    }
}
