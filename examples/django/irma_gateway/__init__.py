"""Django middleware for apps behind the caddy-irma gateway.

Add "irma_gateway.middleware.IrmaGatewayMiddleware" at the top of MIDDLEWARE and configure
IRMA_GATEWAY in your settings (see README.md). Every request must then carry a valid identity
token of the gateway, minted for the policy of the request's path; the view finds what the
gateway asserts in request.irma.
"""
