package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newFabricEnvCmd() *cobra.Command {
	var profile bool
	c := &cobra.Command{
		Use:   "env FABRIC ACCOUNT",
		Short: "Print the exports (or an AWS config profile) that point the aws CLI and SDKs at an account of the fabric",
		Long: `Print what to export so that the AWS CLI, boto3 and the SDKs call the fabric's
API as ACCOUNT (its name or id):

  eval "$(pvlink fabric env demo consumer)"
  aws ec2 describe-vpc-endpoints --endpoint-url "$PVLINK_ENDPOINT_URL"

AWS_ENDPOINT_URL is set too, which newer CLIs and SDKs follow without
--endpoint-url. With --profile, print a profile for ~/.aws/config and
~/.aws/credentials instead.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client(cmd, args[0])
			if err != nil {
				return err
			}
			r, err := c.Status()
			if err != nil {
				return err
			}
			for _, a := range r.Accounts {
				if a.Name != args[1] && a.ID != args[1] {
					continue
				}
				out := cmd.OutOrStdout()
				if profile {
					fmt.Fprintf(out, "# ~/.aws/credentials\n[pvlink-%s-%s]\naws_access_key_id = %s\naws_secret_access_key = %s\n\n", r.Name, a.Name, a.AccessKeyID, a.SecretAccessKey)
					fmt.Fprintf(out, "# ~/.aws/config\n[profile pvlink-%s-%s]\nregion = %s\nendpoint_url = %s\n", r.Name, a.Name, r.Region, r.API.URL)
					return nil
				}
				fmt.Fprintf(out, "export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_DEFAULT_REGION=%s\nexport AWS_ENDPOINT_URL=%s\nexport PVLINK_ENDPOINT_URL=%s\n",
					a.AccessKeyID, a.SecretAccessKey, r.Region, r.API.URL, r.API.URL)
				return nil
			}
			return fmt.Errorf("fabric %s has no account %s", args[0], args[1])
		},
	}
	c.Flags().BoolVar(&profile, "profile", false, "print an AWS config profile instead of exports")
	return c
}
