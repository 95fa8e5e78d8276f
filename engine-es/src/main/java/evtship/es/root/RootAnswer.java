package evtship.es.root;

import java.io.IOException;
import java.util.List;
import java.util.function.Supplier;

import org.elasticsearch.Build;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.xcontent.XContentBuilder;

/**
 * {@code GET /} and {@code HEAD /}, shaped like Elasticsearch's own root answer, which lives in
 * the {@code rest-root} module that Maven Central does not serve. This one answer is evtship's:
 * everything else the node serves is Elasticsearch's. The server's RestController adds the
 * {@code X-elastic-product: Elasticsearch} header to every answer itself, and its HTTP channel
 * drops the body of a HEAD answer.
 */
public final class RootAnswer extends BaseRestHandler {

    private final Supplier<ClusterService> clusterService;

    public RootAnswer(Supplier<ClusterService> clusterService) {
        this.clusterService = clusterService;
    }

    @Override
    public String getName() {
        return "evtship_root_answer";
    }

    @Override
    public List<Route> routes() {
        return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
    }

    @Override
    protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) throws IOException {
        // Elasticsearch pretty-prints this answer unless the caller says otherwise.
        boolean pretty = request.hasParam("pretty") == false || request.paramAsBoolean("pretty", true);
        return channel -> {
            ClusterService cs = clusterService.get();
            ClusterState state = cs.state();
            Build build = Build.current();
            XContentBuilder body = channel.newBuilder();
            if (pretty) {
                body.prettyPrint();
            }
            body.startObject();
            body.field("name", cs.getNodeName());
            body.field("cluster_name", cs.getClusterName().value());
            body.field("cluster_uuid", state.metadata().clusterUUID());
            body.startObject("version");
            body.field("number", build.qualifiedVersion());
            body.field("build_flavor", build.flavor());
            body.field("build_type", build.type().displayName());
            body.field("build_hash", build.hash());
            body.field("build_date", build.date());
            body.field("build_snapshot", build.isSnapshot());
            body.field("lucene_version", org.apache.lucene.util.Version.LATEST.toString());
            body.field("minimum_wire_compatibility_version", build.minWireCompatVersion());
            body.field("minimum_index_compatibility_version", build.minIndexCompatVersion());
            body.endObject();
            body.field("tagline", "You Know, for Search");
            body.endObject();
            channel.sendResponse(new RestResponse(RestStatus.OK, body));
        };
    }
}
