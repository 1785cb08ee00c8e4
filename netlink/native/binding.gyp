{
  "targets": [
    {
      "target_name": "netlink",
      "sources": ["netlink.c"],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
