// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3.
//
// The etcd project's own main package lives in its root module, which is not
// meant to be depended on; this wrapper calls the same entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
