"""Pulumi ComponentResources shared by the programs under pulumi/ (imported only by them and the tests)."""
