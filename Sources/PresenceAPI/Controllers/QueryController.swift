import Foundation
import Hummingbird
import Presence

/// Query endpoints (read token; the write token may read too).
struct QueryController<Context: RequestContext>: Sendable {
    let registry: PresenceRegistry

    var socketEndpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get(":socketId", use: socket)
        routes.head(":socketId", use: socketHead)
        routes.post("lookup", use: lookup)
        // The constant route would hide a socket named "lookup" from GET and HEAD.
        routes.get("lookup") { request, context in try await socket(id: "lookup", request, context: context) }
        routes.head("lookup") { _, _ in Response(status: try await registry.socket("lookup") == nil ? .notFound : .ok) }
        return routes
    }

    var nodeEndpoints: RouteCollection<Context> {
        let routes = RouteCollection(context: Context.self)
        routes.get(use: nodes)
        routes.get(":nodeId", use: node)
        routes.get(":nodeId/sockets", use: nodeSockets)
        return routes
    }

    /// `GET /v1/sockets/{socketId}`: 200 when alive, 404 `{socketId, alive: false}` otherwise
    /// (with `disconnectedAt` and `reason` when the registry knows how it went).
    @Sendable func socket(_ request: Request, context: Context) async throws -> Response {
        try await socket(id: try Parameter.id(context, "socketId"), request, context: context)
    }

    func socket(id socketID: String, _ request: Request, context: Context) async throws -> Response {
        let state = try await registry.lookup([socketID])[0]
        var response = try SocketResponse(socketID: socketID, state: state).response(from: request, context: context)
        response.status = state.socket == nil ? .notFound : .ok
        return response
    }

    /// `HEAD /v1/sockets/{socketId}`: the same status, no body.
    @Sendable func socketHead(_ request: Request, context: Context) async throws -> Response {
        let socketID = try Parameter.id(context, "socketId")
        return Response(status: try await registry.socket(socketID) == nil ? .notFound : .ok)
    }

    /// `POST /v1/sockets/lookup`: 1–1,000 ids, one entry each, in order.
    @Sendable func lookup(_ request: Request, context: Context) async throws -> Response {
        let body = try await JSONBody.read(request, allowEmpty: false, allowedKeys: ["socketIds"])
        guard case .array(let list) = body["socketIds"] else {
            throw APIError.badRequest("invalid_body", "socketIds must be an array of strings")
        }
        guard (1...PresenceRegistry.maximumBatch).contains(list.count) else {
            throw APIError.badRequest("invalid_body", "socketIds must hold 1–\(PresenceRegistry.maximumBatch) ids, got \(list.count)")
        }
        var ids: [String] = []
        ids.reserveCapacity(list.count)
        for (index, item) in list.enumerated() {
            guard let id = try JSONBody.id(item, field: "socketIds[\(index)]") else {
                throw APIError.badRequest("invalid_id", "socketIds[\(index)] must be a string")
            }
            ids.append(id)
        }
        let states = try await registry.lookup(ids)
        return try SocketList(sockets: zip(ids, states).map { SocketResponse(socketID: $0, state: $1) }, nextCursor: nil, includeCursor: false)
            .response(from: request, context: context)
    }

    /// `GET /v1/nodes`.
    @Sendable func nodes(_ request: Request, context: Context) async throws -> NodeList {
        NodeList(nodes: try await registry.nodes().map { NodeResponse(node: $0) })
    }

    /// `GET /v1/nodes/{nodeId}`.
    @Sendable func node(_ request: Request, context: Context) async throws -> NodeResponse {
        let nodeID = try Parameter.id(context, "nodeId")
        guard let node = try await registry.node(nodeID) else {
            throw APIError.notFound("node_not_found", "node \(nodeID) is not registered")
        }
        return NodeResponse(node: node)
    }

    /// `GET /v1/nodes/{nodeId}/sockets?limit=&cursor=`.
    @Sendable func nodeSockets(_ request: Request, context: Context) async throws -> SocketList {
        let nodeID = try Parameter.id(context, "nodeId")
        var limit = 100
        if let text = request.uri.queryParameters.get("limit") {
            guard let value = Int(text), (1...PresenceRegistry.maximumBatch).contains(value) else {
                throw APIError.badRequest("invalid_parameter", "limit must be an integer 1–\(PresenceRegistry.maximumBatch)")
            }
            limit = value
        }
        let cursor = request.uri.queryParameters.get("cursor")
        if let cursor, cursor.isEmpty || cursor.count > 20 || !cursor.allSatisfy({ $0.isASCII && $0.isNumber }) || UInt64(cursor) == nil {
            throw APIError.badRequest("invalid_parameter", "cursor must be a nextCursor value from a previous page")
        }
        guard try await registry.node(nodeID) != nil else {
            throw APIError.notFound("node_not_found", "node \(nodeID) is not registered")
        }
        let page = try await registry.sockets(onNode: nodeID, cursor: cursor, limit: limit)
        return SocketList(sockets: page.sockets.map { SocketResponse(socketID: $0.socketID, socket: $0) }, nextCursor: page.nextCursor, includeCursor: true)
    }

    /// `GET /v1/users/{userId}`.
    @Sendable func user(_ request: Request, context: Context) async throws -> UserResponse {
        let userID = try Parameter.id(context, "userId")
        let user = try await registry.user(userID)
        return UserResponse(
            userId: userID, online: user.online, sockets: user.sockets.map { SocketResponse(socketID: $0.socketID, socket: $0) },
            lastSeenAt: user.lastSeenAt.map(Timestamp.string))
    }

    /// `GET /v1/stats`.
    @Sendable func stats(_ request: Request, context: Context) async throws -> StatsResponse {
        let stats = try await registry.stats()
        return StatsResponse(
            nodes: .init(alive: stats.aliveNodes, dead: stats.deadNodes),
            sockets: .init(alive: stats.aliveSockets),
            users: .init(online: stats.onlineUsers, exact: stats.onlineUsersExact))
    }

    struct NodeList: ResponseEncodable { let nodes: [NodeResponse] }

    struct SocketList: ResponseEncodable {
        let sockets: [SocketResponse]
        let nextCursor: String?
        let includeCursor: Bool

        enum CodingKeys: String, CodingKey { case sockets, nextCursor }

        func response(from request: Request, context: some RequestContext) throws -> Response {
            var json = JSONText(capacity: 64 + 200 * sockets.count)
            json.raw("{")
            json.key("sockets")
            json.raw("[")
            for (index, socket) in sockets.enumerated() {
                if index > 0 { json.comma() }
                socket.write(to: &json)
            }
            json.raw("]")
            if includeCursor {
                json.comma()
                json.key("nextCursor")
                if let nextCursor { json.string(nextCursor) } else { json.raw("null") }
            }
            json.raw("}")
            return json.response()
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(sockets, forKey: .sockets)
            if includeCursor { try container.encode(nextCursor, forKey: .nextCursor) }
        }
    }

    struct UserResponse: ResponseEncodable {
        let userId: String
        let online: Bool
        let sockets: [SocketResponse]
        /// Absent while online or unknown (encoded only when set).
        let lastSeenAt: String?
    }

    struct StatsResponse: ResponseEncodable {
        struct Nodes: Encodable { let alive: Int; let dead: Int }
        struct Sockets: Encodable { let alive: Int }
        struct Users: Encodable { let online: Int; let exact: Bool }
        let nodes: Nodes
        let sockets: Sockets
        let users: Users
    }
}
