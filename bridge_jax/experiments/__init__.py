"""Experiments that test the α-Bridge's claims (METHOD.md §8): the method sweep and its plots."""
