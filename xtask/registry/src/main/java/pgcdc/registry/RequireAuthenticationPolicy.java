package pgcdc.registry;

import io.quarkus.security.identity.SecurityIdentity;
import io.quarkus.vertx.http.runtime.security.HttpSecurityPolicy;
import io.smallrye.mutiny.Uni;
import io.vertx.ext.web.RoutingContext;
import javax.enterprise.context.ApplicationScoped;
import org.eclipse.microprofile.config.inject.ConfigProperty;

/**
 * Requires an authenticated user (HTTP basic, checked against the embedded
 * users of quarkus-elytron-security-properties-file) for the registry's REST
 * API under {@code /apis/} when the runtime property
 * {@code pgcdc.registry.require-authentication} is true.
 *
 * <p>Why a policy bean and not {@code quarkus.http.auth.permission.*}: in
 * Quarkus 2.16 (the version Apicurio 2.4.2 is built on) permission paths and
 * policies are fixed at build time, so one build could not serve both the
 * shared registry (no credentials, what every test uses) and the one the
 * basic-auth test starts. Quarkus applies every {@link HttpSecurityPolicy}
 * bean to every request; this one permits everything unless the property is
 * set. A denied anonymous request gets the basic-auth challenge (401), a
 * wrong password fails authentication (401).
 */
@ApplicationScoped
public class RequireAuthenticationPolicy implements HttpSecurityPolicy {
    @ConfigProperty(name = "pgcdc.registry.require-authentication", defaultValue = "false")
    boolean required;

    @Override
    public Uni<CheckResult> checkPermission(
            RoutingContext request,
            Uni<SecurityIdentity> identity,
            AuthorizationRequestContext context) {
        if (!required || !request.normalizedPath().startsWith("/apis/")) {
            return Uni.createFrom().item(CheckResult.PERMIT);
        }
        return identity.map(id -> id.isAnonymous() ? CheckResult.DENY : CheckResult.PERMIT);
    }
}
