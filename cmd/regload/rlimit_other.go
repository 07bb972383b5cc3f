//go:build !unix

package main

func raiseNoFile(uint64) error { return nil }
