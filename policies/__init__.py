"""The HIPAA CrossGuard policy pack; rules live in `policies.hipaa_rules`, the pack in __main__."""
