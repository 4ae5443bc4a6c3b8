"""Tokens the app already has: shared-secret (HS256, e.g. Django SimpleJWT), a public key, or an auth
server's published JWKS (Auth0, Keycloak, Cognito, Firebase Auth)."""
