// Test certificates made with the `openssl` command into a fresh temporary
// folder: a CA, a server certificate for localhost / 127.0.0.1 and a client
// certificate it signed, and a second CA with a client certificate of its own
// (one the first CA does not trust). EC P-256 keys, so it takes well under a
// second. Header-only; not thread-safe (call from one test at a time).
#ifndef DSM_TESTS_INTEGRATION_TEST_CERTS_H_
#define DSM_TESTS_INTEGRATION_TEST_CERTS_H_

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace dsm_test {

struct TestCerts {
  std::string dir;
  std::string ca_crt, server_crt, server_key, client_crt, client_key;
  std::string other_ca_crt, rogue_client_crt, rogue_client_key;

  // The content of a file of the set ("" if it cannot be read).
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
};

// Returns false (and leaves `certs` partly filled) when openssl fails.
inline bool MakeTestCerts(TestCerts* certs) {
  std::string pattern = (std::filesystem::temp_directory_path() / "dsm-certs-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) return false;
  certs->dir = pattern;
  const std::string& d = certs->dir;
  {
    std::ofstream cnf(d + "/openssl.cnf");
    cnf << "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = dsm-test\n"
           "[ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n"
           "subjectKeyIdentifier = hash\n"
           "[server]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage = serverAuth\nsubjectAltName = DNS:localhost,IP:127.0.0.1\n"
           "[client]\nbasicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
           "extendedKeyUsage = clientAuth\n";
  }
  const std::string script =
      "set -e; cd '" + d + "'\n"
      "key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out \"$1\"; }\n"
      "for ca in ca other_ca; do key $ca.key; openssl req -x509 -new -key $ca.key -config openssl.cnf "
      "-extensions ca -subj /CN=$ca -days 2 -out $ca.crt; done\n"
      "leaf() { key $1.key; openssl req -new -key $1.key -config openssl.cnf -subj /CN=$1 -out $1.csr; "
      "openssl x509 -req -in $1.csr -CA $2.crt -CAkey $2.key -CAcreateserial -days 2 -extfile openssl.cnf "
      "-extensions $3 -out $1.crt; }\n"
      "leaf server ca server; leaf client ca client; leaf rogue_client other_ca client\n";
  const std::string script_path = d + "/make.sh";
  {
    std::ofstream out(script_path);
    out << script;
  }
  if (std::system(("bash '" + script_path + "' >'" + d + "/openssl.log' 2>&1").c_str()) != 0) return false;
  certs->ca_crt = d + "/ca.crt";
  certs->server_crt = d + "/server.crt";
  certs->server_key = d + "/server.key";
  certs->client_crt = d + "/client.crt";
  certs->client_key = d + "/client.key";
  certs->other_ca_crt = d + "/other_ca.crt";
  certs->rogue_client_crt = d + "/rogue_client.crt";
  certs->rogue_client_key = d + "/rogue_client.key";
  return true;
}

}  // namespace dsm_test

#endif  // DSM_TESTS_INTEGRATION_TEST_CERTS_H_
